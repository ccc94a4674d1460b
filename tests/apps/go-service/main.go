package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "go says hello")
	})
	// Appends the query string to /data/log (a volume, when the project has one) and answers
	// the whole file.
	http.HandleFunc("/log", func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.RawQuery; q != "" {
			f, err := os.OpenFile("/data/log", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(f, q)
			f.Close()
		}
		b, _ := os.ReadFile("/data/log")
		w.Write(b)
	})
	if err := http.ListenAndServe(":"+os.Getenv("PORT"), nil); err != nil {
		panic(err)
	}
}

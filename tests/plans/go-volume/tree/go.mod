module example.com/hello

go 1.22.3

require github.com/go-chi/chi/v5 v5.0.12

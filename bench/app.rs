//! The app the deploy benches build: busybox httpd serving one page, from `FROM scratch`
//! (nothing to pull). `stamp` goes into the image and the page, so each round builds anew.

pub fn files(stamp: &str) -> Vec<(&'static str, Vec<u8>, bool)> {
    vec![
        ("stamp", stamp.as_bytes().to_vec(), false),
        ("busybox", std::fs::read("/bin/busybox").expect("busybox-static"), true),
        (
            "Dockerfile",
            b"FROM scratch\nCOPY stamp /stamp\nCOPY busybox /bin/busybox\nCOPY www /www\nEXPOSE 8080\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n".to_vec(),
            false,
        ),
        ("www/index.html", format!("stamp {stamp}\n").into_bytes(), false),
    ]
}

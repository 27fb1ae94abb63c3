module github.com/verihook/verihook

go 1.26

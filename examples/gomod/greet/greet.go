// Package greet says hello: the example Go module that cairn's README
// publishes with 'cairn publish --go' and builds against through cairn's
// GOPROXY.
package greet

// Hello returns a greeting for name.
func Hello(name string) string { return "hello, " + name }

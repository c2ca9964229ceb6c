// Command fasthttp-ref serves the files under a directory from memory
// with github.com/valyala/fasthttp, for bench/run's serve group: a
// REFERENCE, not a floor, of what a Go HTTP/1.1 server that is not
// net/http does with the same bytes (cairn serve is built on net/http).
// It is its own module, so that cairn does not depend on fasthttp.
//
//	fasthttp-ref -root DIR -prefix /log/ -ready FILE
//
// serves DIR/tile/0/000 at /log/tile/0/000, writes its URL to FILE once
// it listens, and serves until it is killed.
package main

import (
	"flag"
	"io/fs"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/valyala/fasthttp"
)

func main() {
	root := flag.String("root", "", "the directory whose files are served")
	prefix := flag.String("prefix", "/", "the URL path the directory is served at")
	ready := flag.String("ready", "", "a file to write the server's URL to once it listens")
	flag.Parse()
	if *root == "" || *ready == "" {
		log.Fatal("fasthttp-ref: -root and -ready are needed")
	}
	files := map[string][]byte{}
	err := filepath.WalkDir(*root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(*root, p)
		if err != nil {
			return err
		}
		files[*prefix+filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		log.Fatalf("fasthttp-ref: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("fasthttp-ref: %v", err)
	}
	if err := os.WriteFile(*ready, []byte("http://"+l.Addr().String()), 0o644); err != nil {
		log.Fatalf("fasthttp-ref: %v", err)
	}
	log.Fatal(fasthttp.Serve(l, func(ctx *fasthttp.RequestCtx) {
		data, ok := files[string(ctx.Path())]
		if !ok {
			ctx.Error("not found", fasthttp.StatusNotFound)
			return
		}
		ctx.Response.Header.SetContentType("application/octet-stream")
		ctx.Response.Header.Set("Cache-Control", "public, max-age=31536000, immutable")
		ctx.SetBody(data)
	}))
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/keys"
)

// goModules is how many modules the goproxy figures download and build.
const goModules = 50

// benchGoproxy measures the GOPROXY adapter against nginx serving the same
// module files as a static GOPROXY directory: `go mod download` of every
// module, `go build` of a program importing all of them (both with an
// empty module cache, median of 3), and what a server policy adds to a
// request's 95th-percentile latency under load.
func benchGoproxy(ctx context.Context, cairn, work string) error {
	w, err := newPlanWorld(ctx, filepath.Join(work, "goproxy"))
	if err != nil {
		return err
	}
	defer w.repo.Close()
	keyFile := filepath.Join(w.dir, "publisher.key")
	pub, err := keys.Generate(keyFile, "publisher")
	if err != nil {
		return err
	}
	if _, err := author.Grant(ctx, w.repo, author.KeyGrant{Key: pub, Holder: "gopher", Scopes: []string{"publish:bench.example/*"}}, w.root); err != nil {
		return err
	}
	var mods []string
	for i := 0; i < goModules; i++ {
		mod := fmt.Sprintf("bench.example/m%d", i)
		dir := filepath.Join(w.dir, "src", fmt.Sprintf("m%d", i))
		if err := writeModule(dir, mod, i); err != nil {
			return err
		}
		if out, err := exec.Command(cairn, "publish", "--repo", w.repo.Dir, "--key", keyFile, "--go", dir, "v1.0.0").CombinedOutput(); err != nil {
			return fmt.Errorf("cairn publish --go %s: %v\n%s", dir, err, out)
		}
		mods = append(mods, mod)
	}
	srv, url, err := w.serve(ctx, cairn)
	if err != nil {
		return err
	}
	defer stop(srv)

	// The floor's files: what cairn serves, copied into a static GOPROXY tree.
	static := filepath.Join(w.dir, "static")
	for _, mod := range mods {
		for _, f := range []string{"@v/list", "@v/v1.0.0.info", "@v/v1.0.0.mod", "@v/v1.0.0.zip"} {
			b, err := httpGet(url + "/go/" + mod + "/" + f)
			if err != nil {
				return err
			}
			file := filepath.Join(static, mod, f)
			os.MkdirAll(filepath.Dir(file), 0o755)
			if err := os.WriteFile(file, b, 0o644); err != nil {
				return err
			}
		}
	}
	ngx, nurl, err := startNginx(filepath.Join(w.dir, "ngx"), static, filepath.Join(w.repo.LocalDir(), "blobs"), "")
	if err != nil {
		return err
	}
	defer stop(ngx)

	app := filepath.Join(w.dir, "app")
	if err := writeApp(app, mods); err != nil {
		return err
	}
	download := func(proxy string) (time.Duration, error) {
		env := goEnv(filepath.Join(w.dir, "gocache"), proxy)
		args := []string{"mod", "download"}
		for _, m := range mods {
			args = append(args, m+"@v1.0.0")
		}
		return runGo(app, env, args...)
	}
	// go build with an empty module cache and a build cache that holds
	// the standard library only (built once, copied for each build), so
	// that both figures compile the same 50 modules and nothing else.
	stdCache := filepath.Join(w.dir, "stdcache")
	if err := warmStd(w.dir, stdCache); err != nil {
		return err
	}
	build := func(proxy string) (time.Duration, error) {
		dir := filepath.Join(w.dir, "gocache")
		env := goEnv(dir, proxy)
		os.MkdirAll(dir, 0o755)
		if out, err := exec.Command("cp", "-R", stdCache, filepath.Join(dir, "build")).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("cp %s: %v: %s", stdCache, err, out)
		}
		return runGo(app, env, "build", "-o", filepath.Join(w.dir, "app.bin"), ".")
	}
	var dc, dn, bc, bn []time.Duration
	for round := 0; round < 3; round++ {
		for _, m := range []struct {
			f     func(string) (time.Duration, error)
			proxy string
			into  *[]time.Duration
		}{{download, url + "/go", &dc}, {download, nurl, &dn}, {build, url + "/go", &bc}, {build, nurl, &bn}} {
			d, err := m.f(m.proxy)
			if err != nil {
				return err
			}
			*m.into = append(*m.into, d)
		}
	}
	line("floor_goproxy_download", ms(median(dn)), "ms", 1, fmt.Sprintf("THE FLOOR of goproxy_download: go mod download of %d modules (%d KiB zips) from nginx serving cairn's answers as static files, empty module cache, median of 3", goModules, moduleSourceSize>>10))
	line("goproxy_download", ms(median(dc)), "ms", ms(median(dn))/ms(median(dc)), "the same through cairn serve's /go/ (goal ≥ 0.80: at most 1.25× the floor's time)")
	line("floor_goproxy_build", ms(median(bn)), "ms", 1, fmt.Sprintf("THE FLOOR of goproxy_build: go build of a program importing the %d modules through nginx, empty module cache, a build cache holding the standard library only, median of 3", goModules))
	line("goproxy_build", ms(median(bc)), "ms", ms(median(bn))/ms(median(bc)), "the same through cairn serve's /go/")

	// A policy decision under load: the .info of every module, round robin,
	// 4 connections, from a server without a policy and from one with.
	lua := filepath.Join(w.dir, "info.lua")
	var paths []string
	for _, m := range mods {
		paths = append(paths, "/go/"+m+"/@v/v1.0.0.info")
	}
	if err := writeLua(lua, paths); err != nil {
		return err
	}
	if err := appendP95(lua); err != nil {
		return err
	}
	policyFile := filepath.Join(w.dir, "policy.yaml")
	pol := "issuers:\n  security: [acme-security]\nforbid:\n  - {name: high, property: vulnerable, severity: high}\n  - {name: deprecated, property: deprecated}\n"
	if err := os.WriteFile(policyFile, []byte(pol), 0o644); err != nil {
		return err
	}
	os.MkdirAll(filepath.Join(w.dir, "gated"), 0o755)
	gsrv, gurl, err := startCairnWith(cairn, filepath.Join(w.dir, "gated"), w.repo.Dir, filepath.Join(w.dir, "server.key"), policyFile)
	if err != nil {
		return err
	}
	defer stop(gsrv)
	// Alternate between the server without a policy and the one with,
	// so that whatever else the machine does weighs on both alike.
	var plain, gated []float64
	for round := 0; round < 7; round++ {
		p, err := wrkP95(url, lua)
		if err != nil {
			return err
		}
		g, err := wrkP95(gurl, lua)
		if err != nil {
			return err
		}
		plain, gated = append(plain, p), append(gated, g)
	}
	added := medianF(gated) - medianF(plain)
	line("goproxy_policy_p95", added, "µs", none, fmt.Sprintf("what serve --policy adds to a /go/ .info request's 95th-percentile latency under wrk (4 connections, 2 threads, 3 s): %.0f µs with, %.0f µs without, median of 7 alternating runs (absolute; goal ≤ 50 µs)", medianF(gated), medianF(plain)))
	return nil
}

// moduleSourceSize is the size of each benchmark module's one source file.
const moduleSourceSize = 32 << 10

func writeModule(dir, mod string, i int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+mod+"\n\ngo 1.22\n"), 0o644); err != nil {
		return err
	}
	noise := make([]byte, moduleSourceSize/2-200)
	rand.Read(noise)
	src := fmt.Sprintf("package m%d\n\n// Data is this module's payload.\nconst Data = %q\n\n// N is this module's number.\nfunc N() int { return %d + len(Data) }\n", i, hex.EncodeToString(noise), i)
	return os.WriteFile(filepath.Join(dir, fmt.Sprintf("m%d.go", i)), []byte(src), 0o644)
}

func writeApp(dir string, mods []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var gomod, main strings.Builder
	gomod.WriteString("module bench.example/app\n\ngo 1.22\n\nrequire (\n")
	main.WriteString("package main\n\nimport (\n\t\"fmt\"\n")
	for i, m := range mods {
		fmt.Fprintf(&gomod, "\t%s v1.0.0\n", m)
		fmt.Fprintf(&main, "\tm%d %q\n", i, m)
	}
	gomod.WriteString(")\n")
	main.WriteString(")\n\nfunc main() {\n\tn := 0\n")
	for i := range mods {
		fmt.Fprintf(&main, "\tn += m%d.N()\n", i)
	}
	main.WriteString("\tfmt.Println(n)\n}\n")
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "main.go"), []byte(main.String()), 0o644)
}

// goEnv is the environment of a go command with empty module and build
// caches under dir (emptied first), reading modules only from proxy.
func goEnv(dir, proxy string) []string {
	exec.Command("chmod", "-R", "u+w", dir).Run() // in case a module cache was made without -modcacherw
	os.RemoveAll(dir)
	return append(os.Environ(),
		"GOPROXY="+proxy, "GOSUMDB=off", "GONOSUMDB=bench.example", "GOFLAGS=-mod=mod -modcacherw",
		"GOMODCACHE="+filepath.Join(dir, "mod"), "GOCACHE="+filepath.Join(dir, "build"),
		"GOPATH="+filepath.Join(dir, "path"), "GOTOOLCHAIN=local", "GOPRIVATE=", "GONOPROXY=")
}

func runGo(dir string, env []string, args ...string) (time.Duration, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Env = dir, env
	t := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return time.Since(t), nil
}

// appendP95 makes a wrk script print its 95th-percentile latency.
func appendP95(script string) error {
	f, err := os.OpenFile(script, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString("done = function(summary, latency, requests)\n  io.write(string.format(\"p95_us %d\\n\", latency:percentile(95)))\nend\n")
	return err
}

var p95RE = regexp.MustCompile(`p95_us (\d+)`)

func wrkP95(url, script string) (float64, error) {
	out, err := exec.Command("wrk", "-t2", "-c4", "-d3s", "-s", script, url).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk %s: %v\n%s", url, err, out)
	}
	if m := errsRE.FindSubmatch(out); m != nil {
		return 0, fmt.Errorf("wrk %s: %s responses were errors:\n%s", url, m[1], out)
	}
	m := p95RE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk %s: no p95 in its output:\n%s", url, out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// warmStd builds a program that imports only the standard library
// packages the benchmark's program uses, into a build cache at cache.
func warmStd(work, cache string) error {
	dir := filepath.Join(work, "std")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module bench.example/std\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(1) }\n"), 0o644)
	env := append(os.Environ(), "GOCACHE="+cache, "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod", "GOPROXY=off")
	_, err := runGo(dir, env, "build", "-o", filepath.Join(work, "std.bin"), ".")
	return err
}

package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

func TestMain(m *testing.M) {
	quickRaceExit()
	testscript.Main(m, map[string]func(){"cairn": func() { os.Exit(Main()) }})
}

// quickRaceExit makes the cairn processes the tests run (this test
// binary, under -race too) exit at once: the race detector otherwise
// sleeps a second at every exit (GORACE's atexit_sleep_ms, 1000 by
// default), for reports of races still in flight, and the tests run
// about a thousand processes one after another. A race is still
// reported, and fails its process, when it happens.
func quickRaceExit() {
	if g := os.Getenv("GORACE"); raceEnabled && !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
}

// TestScripts runs the workflows and attacks in testdata/script, each a
// user's session line by line (go test -run TestScripts -update rewrites
// the expected outputs of cmp lines).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       *update,
		Setup: func(e *testscript.Env) error {
			for _, kv := range [][2]string{
				{"GIT_AUTHOR_NAME", "mallory"}, {"GIT_AUTHOR_EMAIL", "mallory@example.com"},
				{"GIT_COMMITTER_NAME", "mallory"}, {"GIT_COMMITTER_EMAIL", "mallory@example.com"},
				{"GIT_CONFIG_NOSYSTEM", "1"}, {"SSH_AUTH_SOCK", ""}, {"CAIRN_KEY", ""}, {"CAIRN_REPO", ""},
			} {
				e.Setenv(kv[0], kv[1])
			}
			if g := os.Getenv("GORACE"); g != "" {
				e.Setenv("GORACE", g)
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "netns" { // unshare -rn works here: a command runs with no network at all
				return exec.Command("unshare", "-rn", "true").Run() == nil, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"versiondir":  cmdVersionDir,
			"recordid":    cmdRecordID,
			"forge":       cmdForge,
			"keyid":       cmdKeyID,
			"sshagent":    cmdSSHAgent,
			"waitserver":  cmdWaitServer,
			"waitfile":    cmdWaitFile,
			"grab":        cmdGrab,
			"httpget":     cmdHTTPGet,
			"expand":      cmdExpand,
			"replace":     cmdReplace,
			"nogit":       cmdNoGit,
			"gozip":       cmdGoZip,
			"goupstream":  cmdGoUpstream,
			"goenv":       cmdGoEnv,
			"githttp":     cmdGitHTTP,
			"staticserve": cmdStaticServe,
		},
	})
}

// nogit: leave only cairn on the script's PATH, as on a machine without
// the git binary (what runs in the background keeps its own).
func cmdNoGit(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 0 || neg {
		ts.Fatalf("usage: nogit")
	}
	for _, dir := range filepath.SplitList(ts.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(dir, "cairn")); err == nil {
			bin := ts.MkAbs("nogit-bin")
			if err := os.MkdirAll(bin, 0o755); err != nil {
				ts.Fatalf("%v", err)
			}
			if err := os.Symlink(filepath.Join(dir, "cairn"), filepath.Join(bin, "cairn")); err != nil {
				ts.Fatalf("%v", err)
			}
			ts.Setenv("PATH", bin)
			return
		}
	}
	ts.Fatalf("no cairn on PATH")
}

// waitLimit bounds how long the scripts wait for a background command
// to get somewhere: a bound for a stuck command, never a measure of
// speed (a loaded machine running the race detector is slow, so it is
// generous; the waits return as soon as the condition holds).
const waitLimit = 2 * time.Minute

// waitfile FILE: wait (up to waitLimit) until FILE exists (a background
// command's sign that it got somewhere).
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: waitfile FILE")
	}
	deadline := time.Now().Add(waitLimit)
	for {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within %v", args[0], waitLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitserver FILE VAR: wait (up to waitLimit) for a server started in the
// background to write its URL to FILE (cairn serve --ready-file), and
// set $VAR to it.
func cmdWaitServer(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitserver FILE VAR")
	}
	deadline := time.Now().Add(waitLimit)
	for {
		data, err := os.ReadFile(ts.MkAbs(args[0]))
		if err == nil && len(data) > 0 {
			ts.Setenv(args[1], strings.TrimSpace(string(data)))
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no server wrote %s within %v", args[0], waitLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpget [-until REGEXP] URL: GET the URL; its body is the command's
// stdout. It fails unless the status is 200 OK (with !, unless it is
// not). With -until, it asks again (for up to waitLimit) until the body
// matches REGEXP.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	var until *regexp.Regexp
	if len(args) == 3 && args[0] == "-until" {
		until, args = regexp.MustCompile(args[1]), args[2:]
	}
	if len(args) != 1 {
		ts.Fatalf("usage: httpget [-until REGEXP] URL")
	}
	deadline := time.Now().Add(waitLimit)
	for {
		resp, err := http.Get(args[0])
		if err != nil {
			ts.Fatalf("%v", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			ts.Fatalf("%v", err)
		}
		if until != nil && !until.Match(body) {
			if time.Now().After(deadline) {
				ts.Fatalf("GET %s: no match for %s within %v; last body:\n%s", args[0], until, waitLimit, body)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		fmt.Fprintf(ts.Stdout(), "%s\n%s", resp.Status, body)
		if (resp.StatusCode == http.StatusOK) == neg {
			ts.Fatalf("GET %s: %s", args[0], resp.Status)
		}
		return
	}
}

// expand FILE: replace $VAR and ${VAR} in FILE with the script's
// environment (for files that must name an introduction or a URL).
func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: expand FILE")
	}
	path := ts.MkAbs(args[0])
	ts.Check(os.WriteFile(path, []byte(os.Expand(ts.ReadFile(args[0]), ts.Getenv)), 0o644))
}

// replace FILE REGEXP NEW: edit FILE as a hand would; it fails if
// REGEXP does not match.
func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: replace FILE REGEXP NEW")
	}
	re := regexp.MustCompile(args[1])
	data := ts.ReadFile(args[0])
	if !re.MatchString(data) {
		ts.Fatalf("no match for %s in %s", args[1], args[0])
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(re.ReplaceAllString(data, args[2])), 0o644))
}

// grab VAR REGEXP: set $VAR to the first group of REGEXP's first match
// in the previous command's stdout.
func cmdGrab(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: grab VAR REGEXP")
	}
	m := regexp.MustCompile(`(?m)` + args[1]).FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("no match for %s in stdout", args[1])
	}
	ts.Setenv(args[0], m[1])
}

// versiondir VAR NAME@VERSION: set $VAR to the version's directory in the index.
func cmdVersionDir(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: versiondir VAR NAME@VERSION")
	}
	name, version := descriptor.SplitID(args[1])
	ts.Setenv(args[0], layout.VersionDir(name, version))
}

var recordRE = regexp.MustCompile(`(?m)^record ([0-9a-f]{64})$`)

// recordid VAR: set $VAR to the last record id the previous command printed.
func cmdRecordID(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: recordid VAR")
	}
	m := recordRE.FindAllStringSubmatch(ts.ReadFile("stdout"), -1)
	if len(m) == 0 {
		ts.Fatalf("no 'record ID' line in stdout")
	}
	ts.Setenv(args[0], m[len(m)-1][1])
}

// forge IN OUT-DIR KEYFILE PAYLOAD-TYPE PREDICATE-TYPE: re-sign the
// statement of record IN with KEYFILE after setting its payload and
// predicate types ("-" keeps one), write it to OUT-DIR/ID.json, and set
// $FORGED to that path. It is the attacker's tool.
func cmdForge(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 5 {
		ts.Fatalf("usage: forge IN OUT-DIR KEYFILE PAYLOAD-TYPE PREDICATE-TYPE")
	}
	rec, err := record.Parse([]byte(ts.ReadFile(args[0])))
	ts.Check(err)
	var st map[string]any
	ts.Check(json.Unmarshal(rec.Payload, &st))
	if args[4] != "-" {
		st["predicateType"] = args[4]
	}
	payload, err := json.Marshal(st)
	ts.Check(err)
	pt := record.PayloadType
	if args[3] != "-" {
		pt = args[3]
	}
	s, err := keys.LoadPrivate(ts.MkAbs(args[2]))
	ts.Check(err)
	sig, err := s.Sign(dsse.PAE(pt, payload))
	ts.Check(err)
	env, err := json.Marshal(dsse.Envelope{PayloadType: pt, Payload: base64.StdEncoding.EncodeToString(payload),
		Signatures: []dsse.Signature{{KeyID: keys.ID(s.Public()), Sig: base64.StdEncoding.EncodeToString(sig)}}})
	ts.Check(err)
	out := ts.MkAbs(args[1]) + "/" + record.ID(payload) + ".json"
	ts.Check(os.WriteFile(out, env, 0o644))
	ts.Setenv("FORGED", out)
}

// keyid VAR FILE: set $VAR to the SHA256 fingerprint of a key file.
func cmdKeyID(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: keyid VAR FILE")
	}
	pub, err := keys.LoadPublic(ts.MkAbs(args[1]))
	ts.Check(err)
	ts.Setenv(args[0], keys.ID(pub))
}

// sshagent SOCKET: run the real ssh-agent in the foreground on SOCKET for
// the rest of the script.
func cmdSSHAgent(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: sshagent SOCKET")
	}
	sock := ts.MkAbs(args[0])
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	ts.Check(cmd.Start())
	ts.Defer(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(sock); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	ts.Fatalf("ssh-agent did not create %s", sock)
}

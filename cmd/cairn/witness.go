package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"cairn.dev/cairn/internal/checkpoint"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/safefile"
	"cairn.dev/cairn/internal/transport"
	"cairn.dev/cairn/internal/witness"
	"cairn.dev/cairn/internal/witness/audit"
)

func newWitnessCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "witness",
		Short: "Run a witness that cosigns logs' checkpoints (C2SP tlog-witness)",
		Long: `A witness keeps, for each log it witnesses, the latest checkpoint it cosigned,
and cosigns a new checkpoint only with a consistency proof from that one: it
never cosigns two trees of a log that are not consistent. Readers that require
cosignatures by witnesses they trust cannot be shown a history other readers
are not shown (a split view).

The protocol is C2SP tlog-witness (POST /add-checkpoint), the cosignatures
C2SP tlog-cosignature (cosignature/v1, ed25519): cairn's witness cosigns other
logs' checkpoints, and cairn servers submit to witnesses written elsewhere
(litewitness).

A cairn index's log may be audited (add-log --audit URL): the witness then
keeps a full replica of the index, pulled from its server and verified by the
index's rules, and cosigns only a tree its own log holds. A witness that checks
consistency alone cosigns a tree whose map leaf the log's key holder forged (a
map that omits a record); an auditing witness refuses it, so a light client
that requires it is safe from a lying log key.`,
	}
	c.AddCommand(newWitnessServeCmd(), newWitnessAddLogCmd(), newWitnessListCmd(), newWitnessVkeyCmd())
	return c
}

// stateFlag adds --state, the witness's state directory.
func stateFlag(c *cobra.Command, dst *string, made bool) {
	usage := "the witness's state directory (add-log makes it)"
	if made {
		usage = "the witness's state directory (made if missing)"
	}
	c.Flags().StringVar(dst, "state", "", usage)
}

// openWitnessState opens the --state directory, which every witness
// command needs: made if missing only when make is set (add-log), so
// that a directory named wrong is said, not served empty.
func openWitnessState(dir string, make bool) (*witness.State, error) {
	if dir == "" {
		return nil, usageError{errors.New("name the witness's state directory with --state DIR")}
	}
	if !make {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("witness state %s: no such directory: name the directory cairn witness add-log made (cairn witness add-log --state DIR --origin ORIGIN --key VKEY adds a log to witness, making it): %w", dir, fs.ErrNotExist)
		}
	}
	return witness.OpenState(dir)
}

func newWitnessServeCmd() *cobra.Command {
	var (
		key, name, state, addr, ready string
		js                            bool
	)
	c := &cobra.Command{
		Use:   "serve --key KEY --name NAME --state DIR [--addr HOST:PORT]",
		Short: "Serve a witness: POST /add-checkpoint, cosigning with --key",
		Long: `Serve a witness over HTTP, until interrupted: POST /add-checkpoint (C2SP
tlog-witness) cosigns a checkpoint of a log added with 'cairn witness add-log'
when it is signed by one of the log's keys and consistent with the latest
checkpoint cosigned for it; it answers 409 with the size it holds when the
request's old size is another, 422 when the consistency proof does not verify,
404 for a log it does not witness, 403 when no signature is by the log's keys.

For a log added with --audit, it cosigns only when its replica of the index
(in the state directory's audit/), pulled from the log's server up to the
checkpoint's head and verified by the rules, holds the checkpoint's tree: the
same size, root and map leaf. It answers 422 otherwise (logged as a security
event, with both roots), and 503 when it cannot tell yet (the server
unreachable, or not serving that head).

The state directory keeps, per log, the latest tree cosigned, written durably
before the cosignature is returned, and changed under a lock: several
processes may share it (and 'cairn witness add-log' may change it while the
witness serves), and no two requests can get two inconsistent trees cosigned.

--key is an OpenSSH ed25519 private key file, or a .pub file whose private key
an ssh-agent at $SSH_AUTH_SOCK holds. Readers name the witness by its vkey
('cairn witness vkey').`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" || key == "" {
				return usageError{errors.New("a witness needs --key, its own signing key, and --name, the name its cosignatures carry (e.g. witness.example.com/w1)")}
			}
			signer, err := keys.Resolve(key)
			if err != nil {
				return err
			}
			st, err := openWitnessState(state, false)
			if err != nil {
				return err
			}
			if logs, err := st.Logs(); err == nil && len(logs) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: witness state %s names no log: this witness cosigns nothing until cairn witness add-log --state %s adds one\n", state, state)
			}
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			w, err := witness.NewServer(name, signer, st, log)
			if err != nil {
				return usageError{err}
			}
			auditor := audit.New(auditDir(state))
			defer auditor.Close()
			w.SetAuditor(auditor)
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			url := "http://" + l.Addr().String()
			if js {
				type listening struct {
					Name  string `json:"name"`
					Vkey  string `json:"vkey"`
					State string `json:"state"`
					Addr  string `json:"addr"`
					URL   string `json:"url"`
				}
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(listening{name, w.VerifierKey(), state, l.Addr().String(), url}); err != nil {
					l.Close()
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "witness %s serving at %s\nvkey %s\n", name, url, w.VerifierKey())
			}
			if ready != "" {
				if err := safefile.Write(ready, []byte(url+"\n"), safefile.Options{}); err != nil {
					l.Close()
					return err
				}
			}
			return serveWitness(cmd.Context(), l, w)
		},
	}
	c.Flags().StringVar(&key, "key", "", "the witness's signing key (a private key file, or a .pub whose key ssh-agent holds)")
	c.Flags().StringVar(&name, "name", "", "the witness's name, which its cosignatures carry (e.g. witness.example.com/w1)")
	stateFlag(c, &state, false)
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:7380", "address to listen on (port 0: any free port)")
	c.Flags().StringVar(&ready, "ready-file", "", "write the witness's URL to this file once it listens")
	c.Flags().BoolVar(&js, "json", false, "print one JSON line once listening: the name, vkey, state, address and URL")
	return c
}

// serveWitness serves h on l until ctx ends, then lets requests in flight
// finish for a few seconds.
func serveWitness(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// auditDir is where a witness keeps its replicas of the indexes it
// audits: audit/ in its state directory.
func auditDir(state string) string { return filepath.Join(state, "audit") }

func newWitnessAddLogCmd() *cobra.Command {
	var (
		state, origin, auditURL string
		vkeys                   []string
		js                      bool
	)
	c := &cobra.Command{
		Use:   "add-log --state DIR --origin ORIGIN --key VKEY... [--audit URL]",
		Short: "Witness a log: its origin and the keys that sign its checkpoints",
		Long: `Make the witness witness the log named ORIGIN (its checkpoints' first line),
whose checkpoints are signed by the keys given as vkeys (C2SP signed-note
verifier keys, name+hash+base64; 'cairn key vkey KEY.pub --origin ORIGIN'
prints a cairn index's). The log starts at size 0: the first checkpoint
submitted is cosigned as it is, and every later one only with a consistency
proof. Adding a log again adds keys to it and keeps what was cosigned. A log is
never removed: a witness that forgot a log would cosign a split view of it.
It may run while the witness serves.

With --audit URL (a cairn index's log: ORIGIN is cairn.dev/index/INTRODUCTION),
the witness audits the log against the cairn server at URL: it pulls the
index's history into a replica in its state directory now (up to the head of
the checkpoint the server serves; the first pull of a large index takes a
while), and before each cosignature up to the checkpoint's head, verifying it
by the rules, and cosigns only a tree its own log holds. Adding it again with
another URL changes the server (the replica is kept).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if origin == "" || len(vkeys) == 0 {
				return usageError{errors.New("add-log needs --origin and at least one --key")}
			}
			st, err := openWitnessState(state, true)
			if err != nil {
				return err
			}
			if auditURL != "" && !strings.HasPrefix(origin, witness.CairnOriginPrefix) {
				return usageError{fmt.Errorf("--audit: only a cairn index's log can be audited: want --origin %s<introduction>, not %s", witness.CairnOriginPrefix, origin)}
			}
			l, err := st.AddLog(origin, vkeys...)
			if err != nil {
				return usageError{err}
			}
			if auditURL != "" {
				auditURL = strings.TrimSuffix(auditURL, "/")
				head, size, err := firstPull(cmd.Context(), state, origin, auditURL)
				if err != nil {
					return fmt.Errorf("auditing %s against %s: %w (the log is witnessed, not audited: run add-log --audit again)", origin, auditURL, err)
				}
				if l, err = st.SetAudit(origin, auditURL); err != nil {
					return usageError{err}
				}
				if !js {
					if head == "" {
						fmt.Fprintf(cmd.OutOrStdout(), "auditing %s against %s: it signs no checkpoint yet; the first one submitted pulls the history\n", origin, auditURL)
					} else {
						fmt.Fprintf(cmd.OutOrStdout(), "auditing %s against %s: replica verified at head %s, %d leaves\n", origin, auditURL, head, size)
					}
				}
			}
			for _, k := range vkeys {
				if v, err := note.NewVerifier(k); err == nil && v.Name() != origin {
					fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: key %s is named %q, not the origin %q: check that it is the log's\n", k, v.Name(), origin)
				}
			}
			if js {
				return printJSON(cmd.OutOrStdout(), witnessLogJSON(l))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "witnessing %s at size %d with %d key(s)\n", l.Origin, l.Size, len(l.Keys))
			return nil
		},
	}
	stateFlag(c, &state, true)
	c.Flags().StringVar(&origin, "origin", "", "the log's origin, its checkpoints' first line (a cairn index's: cairn.dev/index/INTRODUCTION)")
	c.Flags().StringArrayVar(&vkeys, "key", nil, "a vkey of a key that signs the log's checkpoints (repeatable)")
	c.Flags().StringVar(&auditURL, "audit", "", "audit the log against the cairn server at this URL: cosign only trees the index's own history gives")
	c.Flags().BoolVar(&js, "json", false, "print the log as JSON")
	return c
}

// firstPull brings the witness's replica of the index origin names up to
// the head of the checkpoint the server at url serves ("" when it serves
// none yet), verified, so that audits pull only what is new.
func firstPull(ctx context.Context, state, origin, url string) (head string, size int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/log/checkpoint", nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := transport.Client().Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	note, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", 0, fmt.Errorf("reading %s/log/checkpoint: %w", url, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return "", 0, nil
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("%s/log/checkpoint: %s", url, resp.Status)
	}
	a := audit.New(auditDir(state))
	defer a.Close()
	return a.Pull(ctx, strings.TrimPrefix(origin, checkpoint.OriginPrefix), url, note)
}

// witnessLog is a witnessed log as --json prints it.
type witnessLog struct {
	Origin     string   `json:"origin"`
	Keys       []string `json:"keys"`
	Size       int64    `json:"size"`
	Hash       string   `json:"hash"`
	Checkpoint string   `json:"checkpoint,omitempty"`
	Audit      string   `json:"audit,omitempty"`
}

func witnessLogJSON(l witness.Log) witnessLog {
	return witnessLog{l.Origin, l.Keys, l.Size, l.Hash.String(), l.Checkpoint, l.Audit}
}

func newWitnessListCmd() *cobra.Command {
	var (
		state string
		js    bool
	)
	c := &cobra.Command{
		Use:   "list --state DIR",
		Short: "List the logs a witness witnesses, with the latest tree cosigned for each",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openWitnessState(state, false)
			if err != nil {
				return err
			}
			logs, err := st.Logs()
			if err != nil {
				return err
			}
			if js {
				out := []witnessLog{}
				for _, l := range logs {
					out = append(out, witnessLogJSON(l))
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ORIGIN\tSIZE\tROOT\tAUDIT\tKEYS")
			for _, l := range logs {
				a := l.Audit
				if a == "" {
					a = "-"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", l.Origin, l.Size, l.Hash, a, strings.Join(l.Keys, " "))
			}
			return tw.Flush()
		},
	}
	stateFlag(c, &state, false)
	c.Flags().BoolVar(&js, "json", false, "print JSON")
	return c
}

func newWitnessVkeyCmd() *cobra.Command {
	var (
		key, name string
		js        bool
	)
	c := &cobra.Command{
		Use:   "vkey --key KEY --name NAME",
		Short: "Print a witness's vkey, by which readers name it in their policies",
		Long: `Print the vkey (C2SP signed-note verifier key, type cosignature/v1) of the
witness named NAME with the key in KEY (a private key file or its .pub): the
line readers put in their witness policies, and the one 'cairn witness serve'
prints.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" || name == "" {
				return usageError{errors.New("vkey needs --key and --name")}
			}
			pub, err := keys.LoadPublic(key)
			if err != nil {
				return err
			}
			vkey, err := witness.VerifierKey(name, pub)
			if err != nil {
				return usageError{err}
			}
			if js {
				return printJSON(cmd.OutOrStdout(), struct {
					Name string `json:"name"`
					Key  string `json:"key"`
					Vkey string `json:"vkey"`
				}{name, keys.ID(pub), vkey})
			}
			fmt.Fprintln(cmd.OutOrStdout(), vkey)
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "the witness's key file (private, or its .pub)")
	c.Flags().StringVar(&name, "name", "", "the witness's name (e.g. witness.example.com/w1)")
	c.Flags().BoolVar(&js, "json", false, "print JSON")
	return c
}

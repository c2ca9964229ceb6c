package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/gomod"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/transport"
)

// defaultGOPROXY and defaultGOSUMDB are the go command's defaults.
const (
	defaultGOPROXY = "https://proxy.golang.org"
	defaultGOSUMDB = "sum.golang.org"
)

// publishGo publishes the Go module in dir at version (cairn publish --go).
func publishGo(ctx context.Context, r *index.Repo, dir, version string, s keys.Signer) (*author.Published, error) {
	m, err := gomod.Build(dir, version)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return publishModule(ctx, r, m, s, nil)
}

// publishModule checks a Go module's files against its h1 hashes and as
// the go command would take them (gomod.CheckFiles), and publishes it (with its imported record, if any).
func publishModule(ctx context.Context, r *index.Repo, m *gomod.Module, s keys.Signer, imported *record.ImportedPredicate) (*author.Published, error) {
	if err := gomod.CheckFiles(m.Descriptor, m.Zip, m.Mod); err != nil {
		return nil, err
	}
	files, err := m.Files()
	if err != nil {
		return nil, err
	}
	return author.PublishBuilt(ctx, r, author.Built{Descriptor: m.Descriptor, Files: files, Imported: imported}, s)
}

func newImportCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "import",
		Short: "Bring packages from the world outside into the repository",
	}
	c.AddCommand(newImportGoCmd())
	return c
}

func newImportGoCmd() *cobra.Command {
	var (
		f        changeFlags
		proxy    string
		sumdb    string
		noUpload bool
	)
	c := &cobra.Command{
		Use:   "go MODULE@VERSION",
		Short: "Import a public Go module version, checked against the Go checksum database",
		Long: `Import a public Go module version into the repository: fetch its .info, go.mod
and zip from an upstream GOPROXY, check both against the checksum database the
go command would use (the go.sum lines its signed log holds, the log checked
against the tree this repository saw before), and publish it as MODULE@VERSION
(the version without its "v") with your authored record and an imported
record that keeps the evidence: the proxy's URL, the database's name, its
go.sum lines and its signed tree note. A zip or go.mod the database does not
vouch for is refused, showing both hashes, and nothing is written.

VERSION is a Go version (v1.2.3, a pseudo-version, v2.0.0+incompatible) or
latest: as the go command takes it, the highest release the proxy lists (else
its highest pre-release) that the latest go.mod does not retract; the proxy's
optional @latest only when it lists none. The GOPROXY is --goproxy, else the first http(s) entry of $GOPROXY,
else https://proxy.golang.org; the checksum database is --gosumdb, else
$GOSUMDB, else sum.golang.org, written as GOSUMDB is: a known name, or
NAME+HASH+KEY with an optional URL. What the database showed is kept in the
repository's local directory (sumdb/), so that a database that later shows
another history is caught.

Your key needs a publish scope covering the module path. In a clone of a
server's index, the blobs are uploaded to it, as cairn publish does.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, version, ok := strings.Cut(args[0], "@")
			if !ok || path == "" || version == "" {
				return usageError{fmt.Errorf("%q: want MODULE@VERSION (example.com/greet@v1.2.3, or @latest)", args[0])}
			}
			if version != "latest" {
				v, err := gomod.GoVersion(version)
				if err != nil {
					return usageError{err}
				}
				version = v
			}
			if proxy == "" {
				proxy = goproxyFromEnv(os.Getenv("GOPROXY"))
			}
			if sumdb == "" {
				if sumdb = os.Getenv("GOSUMDB"); sumdb == "" {
					sumdb = defaultGOSUMDB
				}
			}
			db, err := gomod.ParseSumDB(sumdb)
			if err != nil {
				return usageError{err}
			}
			return f.run(cmd, func(ctx context.Context, r *index.Repo, ss []keys.Signer) (*changed, error) {
				s, err := oneKey(ss)
				if err != nil {
					return nil, err
				}
				u := gomod.Upstream{Client: transport.Client(), Proxy: proxy, SumDB: db, CacheDir: filepath.Join(r.LocalDir(), "sumdb")}
				m, v, err := gomod.Import(ctx, u, path, version)
				if err != nil {
					return nil, err
				}
				defer m.Close()
				imp := &record.ImportedPredicate{
					Source: strings.TrimSuffix(proxy, "/"),
					SumDB: &record.SumDBEvidence{Name: db.Name, Key: db.Key, URL: db.URL, Lines: v.Lines,
						Record: v.Record, Tree: string(v.Tree)},
				}
				if !m.Released.IsZero() {
					t := m.Released.UTC()
					imp.Released = &t
				}
				p, err := publishModule(ctx, r, m, s, imp)
				if err != nil {
					return nil, err
				}
				out, err := uploadPublished(ctx, r, s, p, "imported", noUpload)
				if err != nil {
					return nil, err
				}
				out.headline += fmt.Sprintf("\nfrom %s, vouched for by %s (record %d):\n  %s", u.Proxy, db.Name, v.Record, strings.Join(v.Lines, "\n  "))
				return out, nil
			})
		},
	}
	f.register(c, "the signing key file (default $CAIRN_KEY, ssh-agent, ~/.ssh/id_ed25519)")
	c.Flags().StringVar(&proxy, "goproxy", "", "the upstream GOPROXY's URL (default: the first http(s) entry of $GOPROXY, else "+defaultGOPROXY+")")
	c.Flags().StringVar(&sumdb, "gosumdb", "", `the checksum database, as GOSUMDB names it: "NAME+HASH+KEY [URL]" (default $GOSUMDB, else `+defaultGOSUMDB+")")
	c.Flags().BoolVar(&noUpload, "no-upload", false, "in a clone of a server's index, do not upload the blobs")
	return c
}

// goproxyFromEnv is the first http(s) entry of a GOPROXY list (entries
// separated by "," or "|"; direct and off are not proxies), else the go
// command's default.
func goproxyFromEnv(list string) string {
	for _, e := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == '|' }) {
		if e = strings.TrimSpace(e); strings.HasPrefix(e, "https://") || strings.HasPrefix(e, "http://") {
			return e
		}
	}
	return defaultGOPROXY
}

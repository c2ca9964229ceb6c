package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

func newCertifyCmd() *cobra.Command {
	var (
		f        changeFlags
		property string
		osvFile  string
		c        author.Certification
		src      sourceFlags
	)
	cmd := &cobra.Command{
		Use:   "certify NAME@VERSION --property KIND",
		Short: "Certify a published version: audited, tested, reviewed, reproduced, proof-checked, scanned, vulnerable, fixed, deprecated, withdrawn",
		Long: `Add a signed certification about a published version. Your key needs the scope
certify:KIND (publishers may also mark their own packages deprecated or withdrawn).

  --property audited|reviewed|reproduced|proof-checked|scanned|deprecated|withdrawn [--note] [--evidence FILE]
  --property audited|reproduced --artifact PLATFORM --source-file SRC.tar.gz   binds a binary to its (unpublished) source
  --property tested [--result PASSED|WARNED|FAILED]                          in-toto test-result
  --property vulnerable --id GHSA-… --severity low|medium|high|critical [--affects RANGE]   in-toto vulns
  --property vulnerable --osv FILE [--osv-package NAME] [--severity S]       from an OSV record
  --property fixed --id GHSA-…[,…] [--note] [--evidence FILE]               answers vulnerabilities
      [--status not_affected --justification J | --impact TEXT]            not affected (OpenVEX), not fixed
  --property vulnerable … [--status under_investigation | --action TEXT]    OpenVEX terms (cairn vex)

A vulnerable record is about the version certified: a policy judges each
version by its own records, and the record's affected range (--affects, or the
OSV record's) is what the advisory says, not a reach to other versions. When
the range covers other published versions that no record of the vulnerability
is about, certify warns and names them: certify each as well.

--artifact narrows the statement to some artifacts (a platform, "source", or a
file name); without it the statement is about the whole version. Evidence
files are stored as blobs and named by digest. --supersedes replaces an
earlier record of yours. Nobody but you (or the root) can end what you certify.

--status, --justification, --impact and --action are OpenVEX's terms (cairn vex):
a fixed record says the version was fixed (the default) or was never affected
(not_affected, and why: a --justification among component_not_present,
vulnerable_code_not_present, vulnerable_code_not_in_execute_path,
vulnerable_code_cannot_be_controlled_by_adversary, inline_mitigations_already_exist,
or an --impact statement); a vulnerable record may say it is under_investigation
(a policy still counts it as vulnerable until a fixed record answers it), or
what to do about it (--action). Both answer a policy's forbid vulnerable alike.

With --osv, the vulnerability is an OSV record (https://ossf.github.io/osv-schema/,
as osv.dev, GHSA and the Go vulnerability database publish them): the record
keeps its id, aliases (a fixed record naming any of them answers it), summary,
the affected ranges of this package, CVSS vectors and references. An advisory
names the package as its ecosystem does: github.com/acme/fastjson or
@acme/fastjson is acme/fastjson; when it names none so, --osv-package says
which of its packages this one is (or holds).
Its severity is the highest CVSS v3 or v4 base score's band unless --severity
says otherwise.

In an organisation's repository, a version that an upstream publishes (and the
repository does not) can be certified too, after 'cairn sync': the record is
this repository's own statement about the upstream's descriptor, served beside it.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version := descriptor.SplitID(args[0])
			if version == "" {
				return usageError{fmt.Errorf("%q: name the version, NAME@VERSION", args[0])}
			}
			if property == "" {
				return usageError{errors.New("say what you certify with --property")}
			}
			kind, err := record.ParseKind(property)
			if err != nil {
				return usageError{err}
			}
			c.Name, c.Version, c.Kind = name, version, kind
			if c.Source, err = src.ref(); err != nil {
				return err
			}
			if osvFile != "" {
				if kind != record.Vulnerable {
					return usageError{fmt.Errorf("--osv reads a vulnerability: it goes with --property vulnerable, not %s", kind)}
				}
				if c.OSV, err = os.ReadFile(osvFile); err != nil {
					return fmt.Errorf("--osv: %w", err)
				}
				c.OSVFile = osvFile
			} else if c.OSVPackage != "" {
				return usageError{errors.New("--osv-package names the package in an OSV record: give the record with --osv FILE")}
			}
			what := string(kind)
			if len(c.Artifacts) > 0 {
				what += " (" + strings.Join(c.Artifacts, ", ") + ")"
			}
			return f.run(cmd, func(ctx context.Context, r *index.Repo, ss []keys.Signer) (*changed, error) {
				s, err := oneKey(ss)
				if err != nil {
					return nil, err
				}
				a, err := author.Certify(ctx, r, c, s)
				if err == nil && kind == record.Vulnerable && c.Upstream == "" {
					// The record is about this version; its range names
					// others that policies judge by their own records.
					also, aerr := author.AlsoAffected(ctx, r, name, version, a.Records)
					if aerr == nil && len(also) > 0 {
						fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: the record's affected range covers %s too, which no record of this vulnerability is about: a policy judges each version by its own records, so they pass its forbid rules\ncairn: hint: certify each of them as well (cairn certify NAME@VERSION --property vulnerable with the same --id or --osv)\n", strings.Join(also, ", "))
					}
				}
				if err == nil && kind == record.Fixed && c.Upstream == "" {
					unmatched, known, uerr := author.UnmatchedFixes(ctx, r, name, version, a.Records)
					if uerr == nil && len(unmatched) > 0 {
						fmt.Fprintf(cmd.ErrOrStderr(), "cairn: warning: the fixed record answers %s, which no active vulnerable record of %s@%s names (ids are compared exactly): a policy counts it as answering nothing\n", strings.Join(unmatched, ", "), name, version)
						if len(known) > 0 {
							fmt.Fprintf(cmd.ErrOrStderr(), "cairn: hint: its vulnerable records name %s: certify fixed with one of those ids (the record stands; revoke it with cairn revoke if it is wrong)\n", strings.Join(known, ", "))
						} else {
							fmt.Fprintf(cmd.ErrOrStderr(), "cairn: hint: no active vulnerable record is about this version: a fixed record answers one (certify it vulnerable first if the finding stands)\n")
						}
					}
				}
				return &changed{added: a, headline: fmt.Sprintf("certified %s %s", args[0], what)}, err
			})
		},
	}
	f.register(cmd, "the signing key file (default $CAIRN_KEY, ssh-agent, ~/.ssh/id_ed25519)")
	fl := cmd.Flags()
	fl.StringVar(&property, "property", "", "what is certified: audited, tested, reviewed, reproduced, proof-checked, scanned, vulnerable, fixed, deprecated, withdrawn")
	fl.StringArrayVar(&c.Artifacts, "artifact", nil, "only these artifacts (platform, source, or file name; repeatable)")
	fl.StringArrayVar(&c.Evidence, "evidence", nil, "a file backing the statement, stored as a blob (repeatable)")
	fl.StringVar(&c.Note, "note", "", "a note (for tested: a URL of the run)")
	fl.StringVar(&c.VulnID, "id", "", "vulnerable: the advisory id (GHSA-…, CVE-…, OSV id); fixed: the ids it answers")
	fl.StringVar(&c.Severity, "severity", "", "vulnerable: none, low, medium (or moderate), high, critical, or a CVSS score 0.0–10.0")
	fl.StringVar(&c.Affects, "affects", "", "vulnerable: the affected versions, a semver range such as '<1.2.4'")
	fl.StringVar(&c.VEX.Status, "status", "", "fixed: fixed (default) or not_affected; vulnerable: affected (default) or under_investigation")
	fl.StringVar(&c.VEX.Justification, "justification", "", "fixed --status not_affected: component_not_present, vulnerable_code_not_present, vulnerable_code_not_in_execute_path, vulnerable_code_cannot_be_controlled_by_adversary or inline_mitigations_already_exist")
	fl.StringVar(&c.VEX.Impact, "impact", "", "fixed --status not_affected: why the version is not affected, in words")
	fl.StringVar(&c.VEX.Action, "action", "", "vulnerable: what to do about the affected version (an OpenVEX action statement)")
	fl.StringVar(&osvFile, "osv", "", "vulnerable: an OSV record (JSON) of the vulnerability: its id, aliases, ranges, CVSS vectors and references")
	fl.StringVar(&c.OSVPackage, "osv-package", "", "vulnerable: the package as the OSV record names it, when it names several")
	fl.StringVar(&c.Result, "result", "", "tested: PASSED (default), WARNED or FAILED")
	fl.StringVar(&c.Supersedes, "supersedes", "", "the id of an earlier record of yours that this one replaces")
	fl.StringVar(&c.Upstream, "upstream", "", "certify the version this upstream publishes (needed only when several do)")
	src.register(fl)
	return cmd
}

// sourceFlags name the source archive an audit or a reproduction checked
// a binary against: by its digest and size, or by the file, of which only
// the digest and size are recorded (the source may stay internal).
type sourceFlags struct {
	digest string
	size   int64
	file   string
}

func (s *sourceFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&s.digest, "source-digest", "", "audited, reproduced: sha256:HEX of the source archive the binary was checked against (with --source-size); the source itself is not published")
	fl.Int64Var(&s.size, "source-size", 0, "the size in bytes of the source archive --source-digest names")
	fl.StringVar(&s.file, "source-file", "", "audited, reproduced: the source archive the binary was checked against; only its digest and size are recorded")
}

// ref is the source named, nil if none.
func (s *sourceFlags) ref() (*blob.Ref, error) {
	switch {
	case s.file != "" && (s.digest != "" || s.size != 0):
		return nil, usageError{errors.New("name the source by --source-file, or by --source-digest and --source-size, not both")}
	case s.file != "":
		f, err := os.Open(s.file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		ref, err := blob.Digest(f)
		if err != nil {
			return nil, fmt.Errorf("reading the source %s: %w", s.file, err)
		}
		return &ref, nil
	case s.digest != "" || s.size != 0:
		hex, ok := strings.CutPrefix(s.digest, "sha256:")
		if !ok || !blob.IsDigest(hex) || s.size <= 0 {
			return nil, usageError{fmt.Errorf("--source-digest %q --source-size %d: want sha256:HEX (64 lowercase hex digits) and the size in bytes", s.digest, s.size)}
		}
		return &blob.Ref{SHA256: hex, Size: s.size}, nil
	}
	return nil, nil
}

func newRevokeCmd() *cobra.Command {
	var (
		f      changeFlags
		reason string
	)
	c := &cobra.Command{
		Use:   "revoke RECORD-ID --reason TEXT",
		Short: "End a record you issued (or, with a threshold of root keys, anyone's)",
		Long: `Revoke a record: a revoke record is appended beside it, and the record counts as
revoked from then on. Only the record's issuer (the same key, or another key the
root granted to the same holder) or a threshold of root keys can revoke it.
RECORD-ID may be shortened to a unique prefix of at least 8 hex digits.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return usageError{errors.New("say why with --reason")}
			}
			return f.run(cmd, func(ctx context.Context, r *index.Repo, ss []keys.Signer) (*changed, error) {
				a, err := author.Revoke(ctx, r, args[0], reason, ss...)
				return &changed{added: a, headline: "revoked record " + args[0]}, err
			})
		},
	}
	f.register(c, "the signing key file (repeat root keys for a threshold)")
	c.Flags().StringVar(&reason, "reason", "", "why the record is revoked")
	return c
}

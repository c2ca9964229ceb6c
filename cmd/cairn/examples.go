package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// examples are the Examples: section of every command's help, by command
// path (without "cairn "). They are kept here, in one table, so that a
// help page's examples read alike; TestHelpExamples fails when a runnable
// command has none, or an example names a flag its command lacks.
var examples = map[string]string{
	"certifier": `# test every new acme/* version on origin; certify the versions that pass
cairn certifier --remote origin --key ci.key --property tested --filter 'acme/*' --run 'make test'
# scan once (as a cron job), signing the scanner's findings as vulnerable records
cairn certifier --remote origin --key scan.key --property scanned --findings-as vulnerable --run 'osv-scanner --format json .' --once
# print each outcome as a JSON line
cairn certifier --remote origin --key ci.key --property tested --run 'make test' --once --json`,
	"certify": `cairn certify acme/fastjson@1.2.3 --property audited --key audit.key --evidence report.txt --note 'build reviewed'
cairn certify acme/fastjson@1.2.3 --property tested --result FAILED --note https://ci.example.com/run/42
cairn certify acme/fastjson@1.2.3 --property vulnerable --id GHSA-xxxx-yyyy-zzzz --severity high --affects '<1.2.4'
cairn certify acme/fastjson@1.2.4 --property fixed --id GHSA-xxxx-yyyy-zzzz
# OpenVEX terms (cairn vex): not affected, and why; under investigation; what to do
cairn certify acme/fastjson@1.2.3 --property fixed --id CVE-2026-1234 --status not_affected --justification vulnerable_code_not_in_execute_path
cairn certify acme/fastjson@1.2.3 --property vulnerable --id GHSA-aaaa-bbbb-cccc --severity none --status under_investigation
cairn certify acme/fastjson@1.2.3 --property vulnerable --id GHSA-xxxx-yyyy-zzzz --severity high --action 'upgrade to 1.2.4'`,
	"completion bash": `# this shell:
source <(cairn completion bash)
# every new shell (Debian's bash-completion):
cairn completion bash > /etc/bash_completion.d/cairn`,
	"completion fish":       `cairn completion fish > ~/.config/fish/completions/cairn.fish`,
	"completion powershell": `cairn completion powershell | Out-String | Invoke-Expression`,
	"completion zsh":        `cairn completion zsh > "${fpath[1]}/_cairn"`,
	"demo": `cairn demo /tmp/cairn-demo
# then browse it, or clone and pull from it, until interrupted
cairn demo --serve 127.0.0.1:8080 /tmp/cairn-demo`,
	"hook": `# git runs it as the server's pre-receive hook:
cairn hook pre-receive --repo /srv/cairn`,
	"init": `cairn key new root.key
cairn init repo --root-key root.key
# two root keys of three must sign every root act
cairn init repo --root-key r1.key --root-key r2.key --root-key r3.key --threshold 2 --holder ana --holder bo --holder cy`,
	"install": `cairn install
cairn install --verified --into vendor/cairn
cairn install --offline --platform linux-arm64`,
	"key grant": `cairn key grant --key root.key alice.key.pub --holder alice --scope 'publish:acme/*'
cairn key grant --key root.key audit.key.pub --holder acme-security --scope certify:audited --scope certify:vulnerable
cairn key grant --key root.key ci.key.pub --holder ci --scope certify:tested --expires 2027-01-01
# root keys on separate machines: prepare the act, each holder signs it (cairn root sign), then cairn root apply
cairn key grant --unsigned alice.key.pub --holder alice --scope 'publish:acme/*' -o grant.act`,
	"key list": `cairn key list
cairn key list --json`,
	"key new": `cairn key new alice.key
cairn key new ci.key --comment 'ci@example.com'
cairn key new alice.key --json`,
	"key vkey": `# what a witness is given to witness a cairn index's checkpoints
cairn key vkey server.key.pub --origin cairn.dev/index/3f1c…
cairn key vkey server.key.pub --origin cairn.dev/index/3f1c… --json`,
	"key revoke":    `cairn key revoke SHA256:3nT6… --key root.key --reason 'laptop lost'`,
	"label history": `cairn label history stable`,
	"label set":     `cairn label set stable 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 --key curator.key`,
	"lock": `cairn lock
cairn lock --check
cairn lock --verified --json`,
	"log": `cairn log
cairn log -n 5 --json`,
	"log publish": `# the log as static files, for a static file server or a CDN
cairn log publish --to /srv/www/log --checkpoint-key server.key
# to an object store, after each push
cairn log publish --to 's3://cairn-log?endpoint=https://s3.example.com&region=us-east-1' --checkpoint-key server.key`,
	"policy check": `cairn policy check acme/fastjson@1.2.3
cairn policy check --lock --json
cairn policy check --policy strict.yaml acme/fastjson@1.2.3
# against a server, as a light client with no cairn.yaml
cairn policy check --url https://cairn.example.com --introduction 3f1c… --policy strict.yaml acme/fastjson@1.2.3`,
	"policy log": `cairn policy log org-default
cairn policy log org-default --json`,
	"policy publish": `cairn policy publish org-default policy.yaml --key policy-officer.key
# signed by the root (two root keys of a threshold of two)
cairn policy publish org-default policy.yaml --key r1.key --key r2.key`,
	"policy show": `cairn policy show org-default
# the version in force at the start of 3 March (UTC)
cairn policy show org-default --at 2026-03-03
cairn policy show org-default --json`,
	"package init": `cairn package init greet --name acme/greet --version 0.1.0 --license MIT --summary 'says hello'
cairn publish --key alice.key greet`,
	"remote remove": `cairn remote remove origin`,
	"remote set-url": `# the server moved; it must still serve the index pinned by the introduction
cairn remote set-url origin https://cairn2.example.com`,
	"snapshot list": `cairn snapshot list
cairn snapshot list --json`,
	"snapshot show": `cairn snapshot show stable
cairn snapshot show 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 --json`,
	"promote": `cairn promote acme/fastjson@1.2.3 --to public --artifacts binary
cairn promote acme/fastjson@1.2.3 --to public --artifacts linux-amd64 --artifacts source`,
	"proof": `# in a replica (or the server's repository) of the index
cairn proof 3f1c0a9e -o 3f1c0a9e.tlog-proof
cairn proof 3f1c0a9e > 3f1c0a9e.tlog-proof
# from a server, as a light client with no repository (the whole record id)
cairn proof 3f1c0a9e… --url https://cairn.example.com --introduction 3f1c… --witness w1.example+… -o rec.tlog-proof`,
	"evidence": `# after cairn lock, on the build machine: the plan's proof, for whoever must check it
cairn evidence -o build-2026-11-29.evidence
# with every locked artifact inside too, for an archive that needs no server ever again
cairn evidence --dir services/api --with-blobs -o api.evidence`,
	"evidence verify": `# anywhere, with no network and no repository: the index and the witnesses you trust
cairn evidence verify build-2026-11-29.evidence --introduction 3f1c… --witness w1.example+…
# judged again under another policy than the build's
cairn evidence verify build-2026-11-29.evidence --introduction 3f1c… --policy regulator.yaml
# as the indexes stood on the release day (a vulnerability certified since does not count)
cairn evidence verify build-2026-11-29.evidence --introduction 3f1c… --at 2026-11-29
cairn evidence verify build-2026-11-29.evidence --introduction 3f1c… --json`,
	"evidence show": `cairn evidence show build-2026-11-29.evidence --introduction 3f1c… --witness w1.example+…`,
	"vex": `# after cairn lock: the plan's OpenVEX document, for the VEX consumers you run
cairn vex -o cairn.openvex.json
# named versions, from a server read as a light client
cairn vex --url https://cairn.acme.example --introduction 3f1c… acme/log@1.1.0 acme/db@2.0.0
cairn vex acme/log@1.1.0 --author 'acme security team' -o log.openvex.json --json`,
	"sbom": `# after cairn lock: the plan's CycloneDX 1.6 SBOM, for the SBOM tools you run
cairn sbom -o cairn.cdx.json
# dated, for a reproducible build
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) cairn sbom --dir services/api -o api.cdx.json --json
cairn sbom --offline > cairn.cdx.json`,
	"proof verify": `# anywhere, with no network: the index's log key (cairn key vkey) and the witnesses you trust
cairn proof verify 3f1c0a9e.tlog-proof --log-key cairn.dev/index/3f1c…+5e1a2b3c+AZ… --introduction 3f1c… --witness w1.example+…
# inside a replica of the index: its verified keys are the log keys
cairn proof verify 3f1c0a9e.tlog-proof --witness w1.example+… --witness w2.example+… --quorum 1 --json`,
	"publish": `cairn publish ./fastjson --key alice.key
# in a clone of a server's index: publish, then push later
cairn publish ./fastjson --no-upload && cairn push origin
# a Go module (its go.mod names it): published as corp.example/greet@1.2.0
cairn publish --go ./greet v1.2.0 --key alice.key`,
	"import go": `# from $GOPROXY, checked against $GOSUMDB (by default proxy.golang.org and sum.golang.org)
cairn import go golang.org/x/mod@v0.42.0 --key platform.key
cairn import go github.com/BurntSushi/toml@latest --key platform.key
# another GOPROXY and checksum database
cairn import go example.com/greet@v1.0.0 --goproxy https://goproxy.example.com --gosumdb 'sum.example.com+0123abcd+AbCd… https://sum.example.com'`,
	"pull": `cairn pull origin
cairn pull origin --json`,
	"push": `cairn push origin
cairn push origin --key alice.key --json`,
	"remote add": `cairn remote add origin https://cairn.example.com --introduction 3f1c…
# a replica of a server's index, made where none is yet
cairn remote add origin https://cairn.example.com --introduction 3f1c… --repo ./replica --mirror https://mirror.example.com
# an index on a plain git host, its log and blobs on static stores
cairn remote add origin https://git.example.com/index.git --log https://log.example.com --mirror https://blobs.example.com --introduction 3f1c…`,
	"remote list": `cairn remote list
cairn remote list --json`,
	"revoke": `cairn revoke 5e0b… --key audit.key --reason 'audit withdrawn: wrong build'`,
	"root apply": `# join the root key holders' signatures (a threshold of them) and append the act
cairn root apply grant.act r1.sig r2.sig`,
	"root sign": `# on each root key holder's own machine: read what the act does, then sign it
cairn root sign grant.act --key r1.key -o r1.sig`,
	"root rotate": `cairn root rotate --key r1.key --key r2.key --new-root-key n1.key --new-root-key n2.key --threshold 2`,
	"serve": `cairn serve --repo /srv/cairn --addr :8080 --checkpoint-key server.key
# any free port; the URL is written to url.txt and printed as a JSON line
cairn serve --addr 127.0.0.1:0 --ready-file url.txt --json
# and the log as static files in an object store, for a CDN
cairn serve --repo /srv/cairn --checkpoint-key server.key --log-to 's3://cairn-log?endpoint=https://s3.example.com&region=us-east-1'`,
	"search": `cairn search
cairn search json
# a glob: * stops at '/'
cairn search 'acme/*' --json`,
	"show": `cairn show acme/fastjson
cairn show acme/fastjson@1.2.3 --json
# an upstream's package: its records, and this repository's own about it
cairn show public-lib/yaml@3.0.1`,
	"snapshot create": `cairn snapshot create lts-1.0.yaml --key curator.key`,
	"sync": `cairn sync
cairn sync --json`,
	"upload": `cairn upload origin
cairn upload origin acme/fastjson@1.2.3 --key alice.key`,
	"upstream add": `cairn upstream add public https://packages.example.org --introduction 7a2d… --key root.key`,
	"upstream list": `cairn upstream list
cairn upstream list --json`,
	"upstream remove": `cairn upstream remove public --key root.key`,
	"upstream set": `cairn upstream set public --witness w1.example+… --witness w2.example+… --quorum 1
# trust no witness again
cairn upstream set public`,
	"verify": `cairn verify
cairn verify --full --json`,
	"version": `cairn version
cairn version --json`,
	"witness add-log": `cairn witness add-log --state /srv/witness --origin cairn.dev/index/3f1c… --key 'cairn.dev/index/3f1c…+6dcbb8eb+AY6G…'`,
	"witness list": `cairn witness list --state /srv/witness
cairn witness list --state /srv/witness --json`,
	"witness serve": `cairn witness serve --key witness.key --name witness.example.com/w1 --state /srv/witness --addr :7380
# any free port; the URL is written to url.txt
cairn witness serve --key witness.key --name witness.example.com/w1 --state /srv/witness --addr 127.0.0.1:0 --ready-file url.txt --json`,
	"witness vkey": `# the line readers put in their witness policies
cairn witness vkey --key witness.key.pub --name witness.example.com/w1`,
	"why": `cairn why acme/fastjson
cairn why acme/fastjson --json
# against a server, as a light client with no cairn.yaml
cairn why acme/fastjson@1.2.3 --url https://cairn.example.com --introduction 3f1c… --policy policy.yaml`,
}

// setExamples gives every command under root its examples, indented as
// cobra's help pages indent them. A group of commands (cairn key, cairn
// completion) without examples of its own shows its subcommands' first
// example each, so that every help page has an Examples: section.
func setExamples(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			walk(s)
		}
		if c.Example != "" || c == root {
			return
		}
		if ex, ok := examples[strings.TrimPrefix(c.CommandPath(), root.Name()+" ")]; ok {
			c.Example = "  " + strings.ReplaceAll(ex, "\n", "\n  ")
			return
		}
		var firsts []string
		for _, s := range c.Commands() {
			for _, line := range strings.Split(s.Example, "\n") {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
					firsts = append(firsts, "  "+line)
					break
				}
			}
		}
		c.Example = strings.Join(firsts, "\n")
	}
	walk(root)
}

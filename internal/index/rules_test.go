package index_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// try checks files as one commit on the current head, without writing.
func (f *fixture) try(parents int, at time.Time, files ...*index.File) error {
	f.t.Helper()
	return f.tryReceived(parents, at, time.Time{}, files...)
}

// tryReceived is try as a server checks a push it received at received.
func (f *fixture) tryReceived(parents int, at, received time.Time, files ...*index.File) error {
	f.t.Helper()
	head, err := f.repo.Head(f.ctx, index.MainRef)
	if err != nil {
		f.t.Fatal(err)
	}
	st, err := f.repo.State(f.ctx, head)
	if err != nil {
		f.t.Fatal(err)
	}
	c := &index.Commit{ID: "test", Time: at, Received: received}
	for i := 0; i < parents; i++ {
		c.Parents = append(c.Parents, head)
	}
	for _, file := range files {
		if file.Status == 0 {
			file.Status, file.Mode = 'A', "100644"
		}
		index.Prepare(file)
		c.Files = append(c.Files, file)
	}
	return index.Apply(st, c, f.intro)
}

// sign signs a statement; a root act is bound to the fixture's index and
// a window, as cairn makes every one (rule act-index): signUnbound
// leaves it unbound.
func (f *fixture) sign(kind record.Kind, subjects []record.Subject, pred any, signers ...keys.Signer) *record.Record {
	f.t.Helper()
	by := time.Now().Add(author.DefaultWindow)
	switch p := pred.(type) {
	case record.GrantPredicate:
		if p.ApplyBy == nil {
			p.ApplyBy, p.Index = &by, f.intro
		}
		pred = p
	case record.RevokeKeyPredicate:
		if p.ApplyBy == nil {
			p.ApplyBy, p.Index = &by, f.intro
		}
		pred = p
	case record.UpstreamPredicate:
		if p.ApplyBy == nil {
			p.ApplyBy, p.Index = &by, f.intro
		}
		pred = p
	case record.RootPredicate:
		if p.ApplyBy == nil && p.Version > 1 {
			p.ApplyBy, p.Index = &by, f.intro
		}
		pred = p
	}
	return f.signUnbound(kind, subjects, pred, signers...)
}

func (f *fixture) signUnbound(kind record.Kind, subjects []record.Subject, pred any, signers ...keys.Signer) *record.Record {
	f.t.Helper()
	payload, err := record.Build(kind, subjects, pred)
	if err != nil {
		f.t.Fatal(err)
	}
	rec, err := record.Sign(payload, signers...)
	if err != nil {
		f.t.Fatal(err)
	}
	return rec
}

func at(dir string, r *record.Record) *index.File {
	return &index.File{Path: layout.RecordPath(dir, r.ID), Data: r.Raw}
}

func TestRules(t *testing.T) {
	f := newFixture(t)
	p := f.publish(f.alice, "acme/fastjson", "1.2.3")
	vdir := layout.VersionDir("acme/fastjson", "1.2.3")
	descSubject := record.Subject{Name: "acme/fastjson@1.2.3", Digest: map[string]string{"sha256": p.Ref.SHA256}}
	audit := func(s keys.Signer, subjects ...record.Subject) *record.Record {
		return f.sign(record.Audited, append([]record.Subject{descSubject}, subjects...), record.CertificationPredicate{Issued: time.Now()}, s)
	}
	good := audit(f.audit)
	now := time.Now()
	other := newSigner()
	expired := newSigner()
	past := now.Add(-time.Hour)
	if _, err := author.Grant(f.ctx, f.repo, author.KeyGrant{Key: expired.Public(), Holder: "temp", Scopes: []string{"certify:audited"}, Expires: &past}, f.root); err != nil {
		t.Fatal(err)
	}
	grantRec := f.sign(record.Grant, []record.Subject{keySubjectOf(other.Public())},
		record.GrantPredicate{Key: keys.FormatPublic(other.Public()), Holder: "other", Scopes: []string{"certify:audited"}, Issued: now}, f.root)

	// A threshold met by one key signing twice, once under another key's id.
	root2 := newSigner()
	mislabelled := f.sign(record.Grant, []record.Subject{keySubjectOf(other.Public())},
		record.GrantPredicate{Key: keys.FormatPublic(other.Public()), Holder: "other", Scopes: []string{"certify:audited"}, Issued: now}, f.root, f.root)
	var env map[string]any
	json.Unmarshal(mislabelled.Raw, &env)
	env["signatures"].([]any)[1].(map[string]any)["keyid"] = keys.ID(root2.Public())
	relabelled, _ := json.Marshal(env)

	// A signature by alice presented as the auditor's.
	forged := audit(f.alice)
	json.Unmarshal(forged.Raw, &env)
	env["signatures"].([]any)[0].(map[string]any)["keyid"] = keys.ID(f.audit.Public())
	forgedRaw, _ := json.Marshal(env)
	forgedRec, _ := record.Parse(forgedRaw)

	// A descriptor for 1.2.4 with no authored record.
	d := *p.Descriptor
	d.Version = "1.2.4"
	dData, _ := d.Marshal()
	vdir2 := layout.VersionDir("acme/fastjson", "1.2.4")

	// A supersede whose replacement is somebody else's record.
	bobAudit := audit(f.bob)
	superseded := f.sign(record.Supersede, []record.Subject{{Name: "record", Digest: map[string]string{"sha256": good.ID}}},
		record.EndPredicate{Reason: "x", Replacement: bobAudit.ID, Issued: now}, f.audit)

	// Revoking a grant with revoke (not revoke-key).
	grantFile := f.repoFind(t, keys.IDHex(f.alice.Public()))
	revokeGrant := f.sign(record.Revoke, []record.Subject{{Name: "record", Digest: map[string]string{"sha256": grantFile}}},
		record.EndPredicate{Reason: "x", Issued: now}, f.root)

	// Root acts copied from another index with the same root key
	// (staging into production): one made before acts named their index,
	// and one bound to the other index.
	eve := newSigner()
	evePred := record.GrantPredicate{Key: keys.FormatPublic(eve.Public()), Holder: "eve", Scopes: []string{"publish:*"}, Issued: now}
	unbound := at(layout.KeyDir(keys.IDHex(eve.Public())), f.signUnbound(record.Grant, []record.Subject{keySubjectOf(eve.Public())}, evePred, f.root))
	staging, by := strings.Repeat("5", 64), now.Add(time.Hour)
	stagingPred := evePred
	stagingPred.ApplyBy, stagingPred.Index = &by, staging
	fromStaging := at(layout.KeyDir(keys.IDHex(eve.Public())), f.sign(record.Grant, []record.Subject{keySubjectOf(eve.Public())}, stagingPred, f.root))
	unboundRevoke := at(layout.KeyDir(keys.IDHex(f.alice.Public())), f.signUnbound(record.RevokeKey, []record.Subject{keySubjectOf(f.alice.Public())}, record.RevokeKeyPredicate{Reason: "x", Issued: now}, f.root))
	actIndexSince := index.RuleSince(index.RuleActIndex)
	// The root grants alice's key again, under the security team's name.
	aliceAsSecurity := at(layout.KeyDir(keys.IDHex(f.alice.Public())), f.sign(record.Grant, []record.Subject{keySubjectOf(f.alice.Public())},
		record.GrantPredicate{Key: keys.FormatPublic(f.alice.Public()), Holder: "acme-security", Scopes: []string{"publish:ns1/*"}, Issued: now}, f.root))
	aliceAgain := at(layout.KeyDir(keys.IDHex(f.alice.Public())), f.sign(record.Grant, []record.Subject{keySubjectOf(f.alice.Public())},
		record.GrantPredicate{Key: keys.FormatPublic(f.alice.Public()), Holder: "alice", Scopes: []string{"publish:ns1/*"}, Issued: now}, f.root))

	cases := []struct {
		name    string
		parents int
		time    time.Time
		files   []*index.File
		rule    string
		want    string
	}{
		{"valid certification", 1, now, []*index.File{at(vdir, good)}, "", ""},
		{"commit adding no file", 1, now, nil, index.RuleNonEmpty, "the commit adds no file"},
		{"commit adding no file, before non-empty", 1, index.RuleSince(index.RuleNonEmpty).Add(-time.Minute), nil, "", ""},
		{"grant naming no index", 1, now, []*index.File{unbound}, index.RuleActIndex, "the grant act names no index"},
		{"key revocation naming no index", 1, now, []*index.File{unboundRevoke}, index.RuleActIndex, "the revoke-key act names no index"},
		{"grant naming no index, before act-index", 1, actIndexSince.Add(-time.Minute), []*index.File{unbound}, "", ""},
		{"grant of a held key under another holder", 1, now, []*index.File{aliceAsSecurity}, index.RuleOneHolder, "is held by alice, and this grant names acme-security"},
		{"grant of a held key under its holder", 1, now, []*index.File{aliceAgain}, "", ""},
		{"grant made for another index", 1, now, []*index.File{fromStaging}, index.RuleActWindow, "prepared for the index whose introduction is " + staging},
		{"merge commit", 2, now, []*index.File{at(vdir, good)}, index.RuleLinear, "2 parents"},
		{"second root commit", 0, now, []*index.File{at(vdir, good)}, index.RuleLinear, "0 parents"},
		{"executable file", 1, now, []*index.File{{Path: layout.RecordPath(vdir, good.ID), Data: good.Raw, Status: 'A', Mode: "100755"}}, index.RuleWellFormed, "mode 100755"},
		{"symlink", 1, now, []*index.File{{Path: layout.RecordPath(vdir, good.ID), Data: good.Raw, Status: 'A', Mode: "120000"}}, index.RuleWellFormed, "mode 120000"},
		{"file named for another id", 1, now, []*index.File{{Path: layout.RecordPath(vdir, strings.Repeat("0", 64)), Data: good.Raw}}, index.RuleWellFormed, "but the record's id is"},
		{"record in another version's directory", 1, now, []*index.File{at(vdir2, good)}, index.RuleSubject, "is not published"},
		{"certification in a key directory", 1, now, []*index.File{at(layout.KeyDir(keys.IDHex(f.audit.Public())), good)}, index.RuleWellFormed, "belongs in a package version's directory"},
		{"artifact not in the descriptor", 1, now, []*index.File{at(vdir, audit(f.audit, record.Subject{Name: "evil.tar.gz", Digest: map[string]string{"sha256": strings.Repeat("e", 64)}}))}, index.RuleSubject, "is not an artifact of"},
		{"wrong descriptor digest", 1, now, []*index.File{at(vdir, f.sign(record.Audited, []record.Subject{{Name: "acme/fastjson@1.2.3", Digest: map[string]string{"sha256": strings.Repeat("d", 64)}}}, record.CertificationPredicate{Issued: now}, f.audit))}, index.RuleSubject, "descriptor's sha256"},
		{"signature under a borrowed key id", 1, now, []*index.File{at(vdir, forgedRec)}, index.RuleSignature, "does not verify"},
		{"expired grant", 1, now, []*index.File{at(vdir, audit(expired))}, index.RuleKeyExpired, "had expired"},
		{"before expiry", 1, past.Add(-time.Minute), []*index.File{at(vdir, audit(expired))}, "", ""},
		{"a second signature under an unknown id is ignored", 1, now, []*index.File{{Path: layout.RecordPath(layout.KeyDir(keys.IDHex(other.Public())), mislabelled.ID), Data: relabelled}}, "", ""},
		{"grant by a non-root key", 1, now, []*index.File{at(layout.KeyDir(keys.IDHex(other.Public())), f.sign(record.Grant, []record.Subject{keySubjectOf(other.Public())}, record.GrantPredicate{Key: keys.FormatPublic(other.Public()), Holder: "x", Scopes: []string{"publish:*"}, Issued: now}, f.alice))}, index.RuleThreshold, "signed by 0 distinct root key"},
		{"grant filed under another key", 1, now, []*index.File{at(layout.KeyDir(keys.IDHex(f.alice.Public())), grantRec)}, index.RuleWellFormed, "directory of the key it names"},
		{"descriptor without authored record", 1, now, []*index.File{{Path: vdir2 + "/" + layout.DescriptorFile, Data: dData}}, index.RulePublishOnce, "without its publisher's authored record"},
		{"authored record for a published version", 1, now, []*index.File{at(vdir, f.sign(record.Authored, []record.Subject{descSubject}, record.AuthoredPredicate{Descriptor: p.Ref, Issued: now}, f.alice))}, index.RulePublishOnce, "which this commit does not publish"},
		{"descriptor at another version's path", 1, now, []*index.File{{Path: vdir + "/" + layout.DescriptorFile, Data: dData}}, index.RuleWellFormed, "sits at the path of acme/fastjson@1.2.3"},
		{"supersede with another issuer's replacement", 1, now, []*index.File{at(vdir, good), at(vdir, bobAudit), at(vdir, superseded)}, index.RuleIssuerOnly, "not by the superseding key"},
		{"revoke of a grant", 1, now, []*index.File{at(layout.KeyDir(keys.IDHex(f.alice.Public())), revokeGrant)}, index.RuleWellFormed, "belongs in a package version's directory"},
		{"deleted file", 1, now, []*index.File{{Path: layout.RecordPath(vdir, p.Records[0]), Status: 'D'}}, index.RuleAppendOnly, "file deleted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantOutcome(t, f.try(c.parents, c.time, c.files...), c.rule, c.want)
		})
	}
	// A key whose grant ended dates its commit back, within a server's
	// clock skew: the server judges the grant when it receives the push.
	t.Run("dated before expiry, received after", func(t *testing.T) {
		wantOutcome(t, f.tryReceived(1, past.Add(-time.Minute), now, at(vdir, audit(expired))), index.RuleKeyExpired, "had expired")
	})
}

// wantOutcome checks a commit's verdict: accepted when rule is "", else
// refused for rule with an error that says want.
func wantOutcome(t *testing.T, err error, rule, want string) {
	t.Helper()
	if rule == "" {
		if err != nil {
			t.Fatalf("refused a valid commit: %v", err)
		}
		return
	}
	wantRule(t, err, rule)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

// repoFind returns the id of the (only) record in a key's directory.
func (f *fixture) repoFind(t *testing.T, keyHex string) string {
	head, _ := f.repo.Head(f.ctx, index.MainRef)
	rd, _ := f.repo.GitReader(f.ctx)
	entries, err := rd.Tree(head + ":" + layout.KeyDir(keyHex))
	if err != nil || len(entries) != 1 {
		t.Fatalf("key dir: %v %v", entries, err)
	}
	return strings.TrimSuffix(entries[0].Name, ".json")
}

// Thresholds count distinct keys: two signatures by one root key, the
// second under another root key's id, do not make two.
func TestThresholdCountsDistinctKeys(t *testing.T) {
	ctx := context.Background()
	r1, r2, r3 := newSigner(), newSigner(), newSigner()
	dir := t.TempDir() + "/repo"
	r, intro, err := index.Init(ctx, dir, []keys.Signer{r1, r2, r3}, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f := &fixture{t: t, ctx: ctx, repo: r, intro: intro.ID, root: r1}
	k := newSigner()
	pred := record.GrantPredicate{Key: keys.FormatPublic(k.Public()), Holder: "k", Scopes: []string{"certify:audited"}, Issued: time.Now()}
	dirK := layout.KeyDir(keys.IDHex(k.Public()))

	twice := f.sign(record.Grant, []record.Subject{keySubjectOf(k.Public())}, pred, r1, r1)
	wantRule(t, f.try(1, time.Now(), at(dirK, twice)), index.RuleThreshold)

	var env map[string]any
	json.Unmarshal(twice.Raw, &env)
	env["signatures"].([]any)[1].(map[string]any)["keyid"] = keys.ID(r2.Public())
	relabelled, _ := json.Marshal(env)
	wantRule(t, f.try(1, time.Now(), &index.File{Path: layout.RecordPath(dirK, twice.ID), Data: relabelled}), index.RuleThreshold)

	// r1's signature copied into a second slot with r2's id and a flipped bit.
	sig, _ := base64.StdEncoding.DecodeString(env["signatures"].([]any)[1].(map[string]any)["sig"].(string))
	sig[0] ^= 1
	env["signatures"].([]any)[1].(map[string]any)["sig"] = base64.StdEncoding.EncodeToString(sig)
	flipped, _ := json.Marshal(env)
	wantRule(t, f.try(1, time.Now(), &index.File{Path: layout.RecordPath(dirK, twice.ID), Data: flipped}), index.RuleThreshold)

	two := f.sign(record.Grant, []record.Subject{keySubjectOf(k.Public())}, pred, r1, r2)
	if err := f.try(1, time.Now(), at(dirK, two)); err != nil {
		t.Fatalf("two distinct root keys refused: %v", err)
	}

	// Rotation: a threshold of the old root, but the new keys did not sign.
	n1, n2 := newSigner(), newSigner()
	rp := record.RootPredicate{Version: 2, Threshold: 2, Previous: intro.ID, Issued: time.Now(),
		Keys: []record.RootKey{{Key: keys.FormatPublic(n1.Public())}, {Key: keys.FormatPublic(n2.Public())}}}
	subjects := []record.Subject{keySubjectOf(n1.Public()), keySubjectOf(n2.Public())}
	oldOnly := f.sign(record.Root, subjects, rp, r1, r2)
	err = f.try(1, time.Now(), &index.File{Path: layout.RootPath(2), Data: oldOnly.Raw})
	wantRule(t, err, index.RuleThreshold)
	if !strings.Contains(err.Error(), "of the new root") {
		t.Fatalf("error does not name the new root: %v", err)
	}
	// Skipping a version, or not naming the previous root, breaks the chain.
	rp3 := rp
	rp3.Version = 3
	skip := f.sign(record.Root, subjects, rp3, r1, r2, n1, n2)
	wantRule(t, f.try(1, time.Now(), &index.File{Path: layout.RootPath(3), Data: skip.Raw}), index.RuleRootRotation)
	ok := f.sign(record.Root, subjects, rp, r1, r2, n1, n2)
	if err := f.try(1, time.Now(), &index.File{Path: layout.RootPath(2), Data: ok.Raw}); err != nil {
		t.Fatalf("valid rotation refused: %v", err)
	}
}

// An index that starts with another root record is another repository.
func TestIntroductionPinned(t *testing.T) {
	f := newFixture(t)
	other := newSigner()
	rp := record.RootPredicate{Version: 1, Threshold: 1, Issued: time.Now(), Keys: []record.RootKey{{Key: keys.FormatPublic(other.Public())}}}
	rec := f.sign(record.Root, []record.Subject{keySubjectOf(other.Public())}, rp, other)
	file := &index.File{Path: layout.RootPath(1), Data: rec.Raw, Status: 'A', Mode: "100644"}
	index.Prepare(file)
	err := index.Apply(index.NewOverlay(nil), &index.Commit{ID: "x", Files: []*index.File{file}}, f.intro)
	wantRule(t, err, index.RuleIntroduction)
	if !strings.Contains(err.Error(), "pinned to introduction "+f.intro) {
		t.Fatalf("error does not name the pinned introduction: %v", err)
	}
}

// An expired key cannot sign by dating its commit before the expiry: a
// commit may not be older than its parent.
func TestBackdatedCommit(t *testing.T) {
	f := newFixture(t)
	p := f.publish(f.alice, "acme/fastjson", "1.2.3")
	expired := newSigner()
	past := time.Now().Add(-time.Hour)
	if _, err := author.Grant(f.ctx, f.repo, author.KeyGrant{Key: expired.Public(), Holder: "temp", Scopes: []string{"certify:audited"}, Expires: &past}, f.root); err != nil {
		t.Fatal(err)
	}
	head, _ := f.repo.Head(f.ctx, index.MainRef)
	st, _ := f.repo.State(f.ctx, head)
	rec := f.sign(record.Audited, []record.Subject{{Name: "acme/fastjson@1.2.3", Digest: map[string]string{"sha256": p.Ref.SHA256}}}, record.CertificationPredicate{Issued: past}, expired)
	file := at(layout.VersionDir("acme/fastjson", "1.2.3"), rec)
	file.Status, file.Mode = 'A', "100644"
	index.Prepare(file)
	c := &index.Commit{ID: "test", Parents: []string{head}, Time: past.Add(-time.Minute), ParentTime: time.Now(), Files: []*index.File{file}}
	err := index.Apply(st, c, f.intro)
	wantRule(t, err, index.RuleTimeOrder)
	if !strings.Contains(err.Error(), "before its parent's") {
		t.Fatalf("error %q does not say why", err)
	}
}

// Upstream declarations are the root's, once per name; this repository's
// records about an upstream's versions need a followed upstream, a
// certify scope, and a name the repository does not publish itself.
func TestUpstreamRules(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/fastjson", "1.2.3")
	now := time.Now()
	intro := strings.Repeat("1", 64)
	declare := func(name string, signers ...keys.Signer) *record.Record {
		return f.sign(record.Upstream, []record.Subject{{Name: name, Digest: map[string]string{"sha256": intro}}},
			record.UpstreamPredicate{Name: name, URL: "https://public.example", Introduction: intro, Issued: now}, signers...)
	}
	cert := func(kind record.Kind, name string, s keys.Signer) *record.Record {
		return f.sign(kind, []record.Subject{{Name: name + "@2.0.0", Digest: map[string]string{"sha256": strings.Repeat("2", 64)}}}, record.CertificationPredicate{Issued: now}, s)
	}
	updir := layout.UpstreamVersionDir("public", "upstream/lib", "2.0.0")
	pub := declare("public", f.root)
	audit := cert(record.Audited, "upstream/lib", f.audit)

	cases := []struct {
		name  string
		files []*index.File
		rule  string
		want  string
	}{
		{"declaration by the root", []*index.File{at(layout.UpstreamDir("public"), pub)}, "", ""},
		{"declaration and audit in one commit", []*index.File{at(layout.UpstreamDir("public"), pub), at(updir, audit)}, "", ""},
		{"declaration by a publisher", []*index.File{at(layout.UpstreamDir("public"), declare("public", f.alice))}, index.RuleThreshold, "signed by 0 distinct root key"},
		{"declaration filed under another name", []*index.File{at(layout.UpstreamDir("other"), pub)}, index.RuleWellFormed, "sits at upstreams/public/"},
		{"audit of an undeclared upstream", []*index.File{at(updir, audit)}, index.RuleUpstream, "does not follow an upstream public"},
		{"audit of an internal name's upstream namesake", []*index.File{at(layout.UpstreamDir("public"), pub), at(layout.UpstreamVersionDir("public", "acme/fastjson", "2.0.0"), cert(record.Audited, "acme/fastjson", f.audit))}, index.RuleUpstream, "internal names win"},
		{"withdrawal by a publisher's key", []*index.File{at(layout.UpstreamDir("public"), pub), at(layout.UpstreamVersionDir("public", "upstream/lib", "2.0.0"), cert(record.Withdrawn, "upstream/lib", f.alice))}, index.RuleScope, "need certify:withdrawn"},
		{"authored record under upstreams", []*index.File{at(layout.UpstreamDir("public"), pub), at(updir, f.sign(record.Authored, []record.Subject{{Name: "upstream/lib@2.0.0", Digest: map[string]string{"sha256": strings.Repeat("2", 64)}}}, record.AuthoredPredicate{Descriptor: record.Ref{SHA256: strings.Repeat("2", 64), Size: 10}, Issued: now}, f.alice))}, index.RuleUpstream, "authored in the index that publishes it"},
		{"descriptor under upstreams", []*index.File{{Path: updir + "/" + layout.DescriptorFile, Data: []byte("{}")}}, index.RuleWellFormed, "descriptors stay upstream"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantOutcome(t, f.try(1, now, c.files...), c.rule, c.want)
		})
	}

	// Declared: a second declaration of the name is refused; only the
	// root ends it, and an ended upstream takes no more records.
	if _, err := author.DeclareUpstream(f.ctx, f.repo, "public", "https://public.example", intro, f.root); err != nil {
		t.Fatal(err)
	}
	wantRule(t, f.try(1, now, at(layout.UpstreamDir("public"), declare("public", f.root))), index.RuleUpstream)
	ups, err := f.repo.Followed(f.ctx)
	if err != nil || len(ups) != 1 {
		t.Fatalf("followed: %v %v", ups, err)
	}
	endBy := func(s keys.Signer) *record.Record {
		return f.sign(record.Revoke, []record.Subject{{Name: "record", Digest: map[string]string{"sha256": ups[0].RecordID}}}, record.EndPredicate{Reason: "x", Issued: now}, s)
	}
	wantRule(t, f.try(1, now, at(layout.UpstreamDir("public"), endBy(f.alice))), index.RuleThreshold)
	if _, err := author.Revoke(f.ctx, f.repo, ups[0].RecordID, "unused", f.root); err != nil {
		t.Fatal(err)
	}
	if ups, _ := f.repo.Followed(f.ctx); len(ups) != 0 {
		t.Errorf("still followed after the root's revocation: %+v", ups)
	}
	wantRule(t, f.try(1, now, at(updir, audit)), index.RuleUpstream)
	if _, err := f.repo.Verify(f.ctx, true); err != nil {
		t.Fatal(err)
	}
}

// A key granted under two holders before rule one-holder has one holder
// however its grants are read: in the index's order (a replay) or in its
// files' (a tree's state), the earliest issued grant's.
func TestHolderIsTheFirstGrantsWhateverTheOrder(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	first := index.Grant{Holder: "alice", Issued: t0, RecordID: "ff"}
	later := index.Grant{Holder: "acme-security", Issued: t0.Add(time.Hour), RecordID: "00"}
	same := index.Grant{Holder: "bob", Issued: t0, RecordID: "fe"}
	for _, order := range [][]index.Grant{{first, later}, {later, first}} {
		if h := (&index.Key{Grants: order}).Holder(); h != "alice" {
			t.Errorf("grants %v: holder %q, want alice (the earliest issued)", order, h)
		}
	}
	for _, order := range [][]index.Grant{{first, same}, {same, first}} {
		if h := (&index.Key{Grants: order}).Holder(); h != "bob" {
			t.Errorf("grants %v: holder %q, want bob (issued at once: the least record id)", order, h)
		}
	}
}

// A server checks a push against its clock: a record by a key whose grant
// ended before the server received it is refused, though its commit is
// dated (within the clock skew) before the end.
func TestCheckUpdateJudgesGrantsWhenReceived(t *testing.T) {
	f := newFixture(t)
	temp := newSigner()
	ends := time.Now().Add(time.Hour)
	if _, err := author.Grant(f.ctx, f.repo, author.KeyGrant{Key: temp.Public(), Holder: "temp", Scopes: []string{"publish:tmp/*"}, Expires: &ends}, f.root); err != nil {
		t.Fatal(err)
	}
	old, err := f.repo.Head(f.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	f.publish(temp, "tmp/x", "1.0.0") // dated now, before the grant ends
	head, err := f.repo.Head(f.ctx, index.MainRef)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.CheckUpdate(f.ctx, old, head, time.Now(), index.MaxClockSkew); err != nil {
		t.Fatalf("received before the grant ends: %v", err)
	}
	_, err = f.repo.CheckUpdate(f.ctx, old, head, ends.Add(time.Minute), 2*time.Hour)
	wantOutcome(t, err, index.RuleKeyExpired, "had expired")
}

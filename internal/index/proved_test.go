package index_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// forge appends a commit of files dated when to main with plain git,
// past the rules, as a server that breaks them would.
func (f *fixture) forge(when time.Time, files ...*index.File) {
	f.t.Helper()
	head, err := f.repo.Head(f.ctx, index.MainRef)
	if err != nil {
		f.t.Fatal(err)
	}
	rd, _ := f.repo.GitReader(f.ctx)
	c, err := rd.Commit(head)
	if err != nil {
		f.t.Fatal(err)
	}
	var gf []gitx.File
	for _, file := range files {
		gf = append(gf, gitx.File{Path: file.Path, Data: file.Data})
	}
	b := f.repo.GitRepo().NewBatch()
	tree, err := b.AddToTree(rd, c.Tree, gf)
	if err != nil {
		f.t.Fatal(err)
	}
	id := b.Write("commit", gitx.FormatCommit(tree, []string{head}, "mallory <m>", when.Unix(), "forged"))
	if err := b.Flush(); err != nil {
		f.t.Fatal(err)
	}
	if err := f.repo.GitRepo().UpdateRef(f.ctx, index.MainRef, id, head, "forged"); err != nil {
		f.t.Fatal(err)
	}
	f.repo.ResetReader()
}

// proved returns what a light client reading subject would hold: the
// files of the subject, of "root" and of everything they need, from the
// history up to main's head.
func (f *fixture) proved(subject string) []index.MemFile {
	f.t.Helper()
	_, all := f.history()
	by := map[string][]index.MemFile{}
	for _, file := range all {
		s, _ := index.SubjectOf(file.Path)
		by[s] = append(by[s], file)
	}
	var out []index.MemFile
	done := map[string]bool{}
	todo := []string{"root", subject}
	for len(todo) > 0 {
		s := todo[0]
		todo = todo[1:]
		if done[s] {
			continue
		}
		done[s] = true
		out = append(out, by[s]...)
		todo = append(todo, index.Needs(by[s])...)
	}
	return out
}

// A light client's replay of the files it proved judges them as the full
// replica's replay of the whole history does: it accepts what the full
// replay accepts and refuses what it refuses, by the same rule — a
// record signed after its key was revoked, or after the key's grant
// expired, an end by a key of another holder, a record by a key granted
// only after it.
func TestReplayProvedJudgesAsFullReplay(t *testing.T) {
	vdir := layout.VersionDir("acme/fastjson", "1.2.3")
	for _, tc := range []struct {
		name   string
		attack func(f *fixture, desc record.Subject) // appends to the index, by the rules or past them
		rule   string
	}{
		{"revoke and supersede, by the rules", func(f *fixture, desc record.Subject) {
			a, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Audited}, f.audit)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Audited, Note: "again", Supersedes: a.Records[0]}, f.audit); err != nil {
				t.Fatal(err)
			}
			if _, err := author.RevokeKey(f.ctx, f.repo, keys.ID(f.audit.Public()), "rotated", f.root); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"a record signed after its key was revoked", func(f *fixture, desc record.Subject) {
			if _, err := author.RevokeKey(f.ctx, f.repo, keys.ID(f.bob.Public()), "laptop lost", f.root); err != nil {
				t.Fatal(err)
			}
			rec := f.sign(record.Audited, []record.Subject{desc}, record.CertificationPredicate{Issued: time.Now()}, f.bob)
			f.forge(time.Now(), at(vdir, rec))
		}, index.RuleKeyRevoked},
		{"a record signed after its key's grant expired", func(f *fixture, desc record.Subject) {
			temp := newSigner()
			until := time.Now().Add(-time.Minute)
			if _, err := author.Grant(f.ctx, f.repo, author.KeyGrant{Key: temp.Public(), Holder: "temp", Scopes: []string{"certify:audited"}, Expires: &until}, f.root); err != nil {
				t.Fatal(err)
			}
			rec := f.sign(record.Audited, []record.Subject{desc}, record.CertificationPredicate{Issued: time.Now()}, temp)
			f.forge(time.Now(), at(vdir, rec))
		}, index.RuleKeyExpired},
		{"an end by a key of another holder", func(f *fixture, desc record.Subject) {
			a, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/fastjson", Version: "1.2.3", Kind: record.Audited}, f.audit)
			if err != nil {
				t.Fatal(err)
			}
			end := f.sign(record.Revoke, []record.Subject{{Name: "record", Digest: map[string]string{"sha256": a.Records[0]}}}, record.EndPredicate{Reason: "mine now", Issued: time.Now()}, f.bob)
			f.forge(time.Now(), at(vdir, end))
		}, index.RuleIssuerOnly},
		{"a record by a key granted only in a later commit", func(f *fixture, desc record.Subject) {
			late := newSigner()
			rec := f.sign(record.Audited, []record.Subject{desc}, record.CertificationPredicate{Issued: time.Now()}, late)
			f.forge(time.Now(), at(vdir, rec))
			grant := f.sign(record.Grant, []record.Subject{keySubjectOf(late.Public())},
				record.GrantPredicate{Key: keys.FormatPublic(late.Public()), Holder: "late", Scopes: []string{"certify:audited"}, Issued: time.Now()}, f.root)
			f.forge(time.Now(), at(layout.KeyDir(keys.IDHex(late.Public())), grant))
		}, index.RuleSignature},
		{"a record whose signature does not verify, among good ones", func(f *fixture, desc record.Subject) {
			good := f.sign(record.Audited, []record.Subject{desc}, record.CertificationPredicate{Issued: time.Now()}, f.audit)
			bad := f.sign(record.Audited, []record.Subject{desc}, record.CertificationPredicate{Issued: time.Now(), Note: "forged"}, f.audit)
			var env map[string]any
			json.Unmarshal(bad.Raw, &env)
			sig := env["signatures"].([]any)[0].(map[string]any)
			sig["sig"] = good.Signatures[0].Sig // a real signature, of another record
			raw, _ := json.Marshal(env)
			if bad, _ = record.Parse(raw); bad == nil {
				t.Fatal("the forged record does not parse")
			}
			f.forge(time.Now(), at(vdir, good), at(vdir, bad))
		}, index.RuleSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.publish(f.alice, "acme/fastjson", "1.2.3")
			tc.attack(f, record.Subject{Name: "acme/fastjson@1.2.3", Digest: map[string]string{"sha256": p.Ref.SHA256}})
			full := f.verifyFull()
			files := f.proved("package acme/fastjson")
			_, light := index.ReplayProved(f.intro, files)
			// Parsed once (ParseFiles), the files are judged alike, as
			// often as asked and by several replays at once.
			index.ParseFiles(files)
			again := make([]error, 4)
			var wg sync.WaitGroup
			for i := range again {
				wg.Go(func() { _, again[i] = index.ReplayProved(f.intro, files) })
			}
			wg.Wait()
			if tc.rule == "" {
				if full != nil || light != nil {
					t.Fatalf("full replay: %v; light replay: %v; want both to accept", full, light)
				}
				for _, err := range again {
					if err != nil {
						t.Fatalf("the files parsed once: %v; want it accepted", err)
					}
				}
				return
			}
			wantRule(t, full, tc.rule)
			for _, err := range append(again, light) {
				wantRule(t, err, tc.rule)
				if fr, lr := ruleOf(full), ruleOf(err); fr.Path != lr.Path || fr.Record != lr.Record || fr.Commit != lr.Commit {
					t.Fatalf("the replays blame different files:\nfull  %v\nlight %v", full, err)
				}
			}
		})
	}
}

func ruleOf(err error) *index.RuleError {
	var re *index.RuleError
	if !errors.As(err, &re) {
		return nil
	}
	return re
}

// The files proved must start at the introduction, the one the client
// pins, and keep commits whole and in order.
func TestReplayProvedRefusesBrokenLogs(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/fastjson", "1.2.3")
	files := f.proved("package acme/fastjson")
	if _, err := index.ReplayProved(f.intro, files); err != nil {
		t.Fatalf("the honest files: %v", err)
	}
	st, err := index.ReplayProved(f.intro, files)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := st.Key(keys.ID(f.alice.Public())); err != nil || k == nil || k.Holder() != "alice" {
		t.Fatalf("the state after the replay: key %+v, %v", k, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Index < files[j].Index })
	other := newSigner()
	_, otherIntro, err := index.Init(f.ctx, t.TempDir()+"/other", []keys.Signer{other}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	shifted := append([]index.MemFile(nil), files...)
	for i := range shifted {
		shifted[i].Index++
	}
	interleaved := append([]index.MemFile(nil), files...)
	last := len(interleaved) - 1
	interleaved[last].Commit, interleaved[last].Time = files[0].Commit, files[0].Time // the publish's last file claims the introduction's commit
	backwards := append([]index.MemFile(nil), files...)
	backwards[last].Time = files[0].Time.Add(-time.Hour)
	for i := range backwards {
		if backwards[i].Commit == files[last].Commit {
			backwards[i].Time = backwards[last].Time
		}
	}
	for _, c := range []struct {
		name  string
		intro string
		files []index.MemFile
		rule  string
	}{
		{"another index's introduction", otherIntro.ID, files, index.RuleIntroduction},
		{"no introduction at leaf 0", f.intro, shifted, index.RuleIntroduction},
		{"nothing", f.intro, nil, index.RuleIntroduction},
		{"a commit's files interleaved with another's", f.intro, interleaved, index.RuleLinear},
		{"a commit older than the one before", f.intro, backwards, index.RuleTimeOrder},
	} {
		_, err := index.ReplayProved(c.intro, c.files)
		if ruleOf(err) == nil || ruleOf(err).Rule != c.rule {
			t.Errorf("%s: %v, want rule %s", c.name, err, c.rule)
		}
	}
}

// Needs names what the rules read to judge a subject's files.
func TestNeeds(t *testing.T) {
	w := newCatalogWorld(t)
	_, files := w.history()
	key := func(s keys.Signer) string { return "key " + keys.IDHex(s.Public()) }
	for subject, want := range map[string][]string{
		"package acme/fastjson":               {key(w.alice), key(w.audit), key(w.bob)},
		"key " + keys.IDHex(w.alice.Public()): {},
		"snapshot " + w.lts:                   {key(w.curator), "package bob/tool"},
		"label lts":                           {key(w.curator), "snapshot " + w.lts, "snapshot " + w.ltsFirst},
		"root":                                {},
	} {
		got := index.Needs(subjectFiles(files, subject))
		sort.Strings(want)
		if len(got) == 0 && len(want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("needs of %s: %v, want %v", subject, got, want)
		}
	}
}

// A subject signed by more keys than Needs remembers (eight) still
// needs every one of them, each once: the ninth and later are converted
// each time they sign, and named once all the same. Three rounds of
// twelve auditors: the ids past the eighth are met again.
func TestNeedsPastEightSigners(t *testing.T) {
	f := newFixture(t)
	f.publish(f.alice, "acme/many", "1.0.0")
	auditors := make([]keys.Signer, 12)
	for i := range auditors {
		auditors[i] = newSigner()
		f.grant(auditors[i], fmt.Sprintf("auditor-%d", i), "certify:audited")
	}
	for round := range 3 {
		for i, a := range auditors {
			if _, err := author.Certify(f.ctx, f.repo, author.Certification{Name: "acme/many", Version: "1.0.0", Kind: record.Audited, Note: fmt.Sprintf("round %d by %d", round, i)}, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []string{"key " + keys.IDHex(f.alice.Public())}
	for _, a := range auditors {
		want = append(want, "key "+keys.IDHex(a.Public()))
	}
	sort.Strings(want)
	_, files := f.history()
	if got := index.Needs(subjectFiles(files, "package acme/many")); !reflect.DeepEqual(got, want) {
		t.Errorf("needs of a package signed by 13 keys: %d subjects %v, want %d %v", len(got), got, len(want), want)
	}
}

// subjectFiles returns the files of a history that are subject's, as a
// light client would read them.
func subjectFiles(files []index.MemFile, subject string) []index.MemFile {
	var out []index.MemFile
	for _, file := range files {
		if s, _ := index.SubjectOf(file.Path); s == subject {
			out = append(out, file)
		}
	}
	return out
}

package descriptor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
)

// marshalIndent is the canonical form as it was first defined: the bytes
// encoding/json's MarshalIndent writes.
func marshalIndent(d *Descriptor) []byte {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// parseByEncodingJSON is Parse as it was before appendIndented: decode,
// check, and compare with what encoding/json writes.
func parseByEncodingJSON(data []byte) (*Descriptor, error) {
	if len(data) > MaxSize {
		return nil, invalid("oversized")
	}
	var d Descriptor
	if err := jsonv2.Unmarshal(data, &d, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, invalid("not a descriptor: %v", err)
	}
	if err := d.Check(); err != nil {
		return nil, err
	}
	if !bytes.Equal(marshalIndent(&d), data) {
		return nil, invalid("not in canonical form")
	}
	return &d, nil
}

// The hand-written encoder writes what encoding/json writes, for any
// descriptor, checked or not: strings with quotes, backslashes, control
// bytes, HTML's <>&, U+2028 and U+2029, invalid UTF-8; omitted fields;
// nil and empty lists.
func FuzzAppendIndented(f *testing.F) {
	f.Add("acme/x", "1.0.0", "sum<&>\u2028\u2029\"\\\n\t\x01\x7f", "MIT", "dep", ">=1", "binary", "linux-amd64", "x.tgz", strings.Repeat("a", 64), int64(10), uint8(7))
	f.Add("", "", "\xff\xfe", "", "", "", "", "", "", "", int64(-1), uint8(0))
	f.Fuzz(func(t *testing.T, name, version, summary, license, dep, rng, kind, platform, file, sha string, size int64, shape uint8) {
		d := &Descriptor{Schema: Schema, Name: name, Version: version, UUID: name + version, Summary: summary, License: license}
		if shape&1 != 0 {
			d.Dependencies = []Dependency{{Name: dep, Version: rng}, {Name: rng, Version: dep}}
		} else if shape&16 != 0 {
			d.Dependencies = []Dependency{}
		}
		switch shape >> 1 & 3 {
		case 1:
			d.Artifacts = []Artifact{}
		case 2:
			d.Artifacts = []Artifact{{Kind: kind, Platform: platform, File: file}}
			d.Artifacts[0].SHA256, d.Artifacts[0].Size = sha, size
		case 3:
			d.Artifacts = []Artifact{{Kind: kind, File: file}, {Kind: platform, Platform: kind, File: sha}}
			d.Artifacts[1].SHA256, d.Artifacts[1].Size = file, -size
		}
		if shape&8 != 0 {
			d.Go = &GoModule{Module: name, Version: version, Sum: summary, ModSum: license}
		}
		if got, want := append(appendIndented(nil, d), '\n'), marshalIndent(d); !bytes.Equal(got, want) {
			t.Fatalf("appendIndented:\n%s\nencoding/json:\n%s", got, want)
		}
	})
}

// Parse accepts exactly what it accepted when it compared with
// encoding/json's bytes, and returns the same descriptor.
func FuzzParseCanonical(f *testing.F) {
	d := sample()
	for i := range d.Artifacts {
		d.Artifacts[i].SHA256, d.Artifacts[i].Size = strings.Repeat("a", 64), 10
	}
	d.Summary, d.License = "fast <json> & more \u2028", "MIT"
	b, err := d.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(bytes.Replace(b, []byte(`\u003c`), []byte(`<`), 1))
	f.Add(bytes.Replace(b, []byte(`\u2028`), []byte("\u2028"), 1))
	f.Add(bytes.TrimSuffix(b, []byte("\n")))
	f.Add(bytes.Replace(b, []byte(`"size": 10`), []byte(`"size": 1e1`), 1))
	f.Add(bytes.Replace(b, []byte("fast"), []byte(`f\u0061st`), 1))
	f.Add(marshalIndent(&Descriptor{Schema: Schema, Name: "acme/x", Version: "1.0.0", UUID: "6f1c2a3e-8d1b-4c8e-9a51-0d7c1e2f3a4b",
		Artifacts: []Artifact{{Kind: KindSource, File: "v1.0.0.zip"}, {Kind: KindGoMod, File: "v1.0.0.mod"}},
		Go:        &GoModule{Module: "acme/x", Version: "v1.0.0", Sum: "h1:" + strings.Repeat("A", 43) + "=", ModSum: "h1:" + strings.Repeat("B", 43) + "="}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Parse(data)
		want, werr := parseByEncodingJSON(data)
		if (err == nil) != (werr == nil) {
			t.Fatalf("Parse: %v; by encoding/json: %v", err, werr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error outside ErrInvalid: %v", err)
			}
			return
		}
		if !bytes.Equal(marshalIndent(got), marshalIndent(want)) {
			t.Fatalf("Parse and the encoding/json parse disagree on the descriptor")
		}
	})
}

// A descriptor in any other spelling than its canonical one is refused:
// an escaped letter, a member out of order, a space more, a number
// written otherwise, a missing final newline.
func TestParseRefusesOtherSpellings(t *testing.T) {
	d := sample()
	for i := range d.Artifacts {
		d.Artifacts[i].SHA256, d.Artifacts[i].Size = strings.Repeat("a", 64), 10
	}
	d.Summary = "fast & small"
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatalf("canonical form refused: %v", err)
	}
	for name, other := range map[string][]byte{
		"escaped letter":   bytes.Replace(b, []byte("fast"), []byte(`f\u0061st`), 1),
		"html unescaped":   bytes.Replace(b, []byte(`\u0026`), []byte("&"), 1),
		"members swapped":  bytes.Replace(b, []byte("\"name\": \"acme/fastjson\",\n  \"version\": \"1.2.3\""), []byte("\"version\": \"1.2.3\",\n  \"name\": \"acme/fastjson\""), 1),
		"space":            bytes.Replace(b, []byte(`"size": 10`), []byte(`"size":  10`), 1),
		"exponent":         bytes.Replace(b, []byte(`"size": 10`), []byte(`"size": 1e1`), 1),
		"no final newline": bytes.TrimSuffix(b, []byte("\n")),
		"tab indent":       bytes.Replace(b, []byte("\n  \"uuid\""), []byte("\n\t\"uuid\""), 1),
	} {
		if bytes.Equal(other, b) {
			t.Fatalf("%s: the test's replacement changed nothing", name)
		}
		if _, err := Parse(other); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "canonical") && name != "exponent" {
			t.Errorf("%s: Parse = %v, want the canonical form refused", name, err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	d := sample()
	for i := range d.Artifacts {
		d.Artifacts[i].SHA256, d.Artifacts[i].Size = strings.Repeat("a", 64), 10
	}
	data, err := d.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// fill sets every exported field under v to a value that is not its
// zero (a list to one element), so that an encoder that leaves a field
// out writes other bytes than encoding/json.
func fill(v reflect.Value, name string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(name + " <&>")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), name)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), name)
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				fill(v.Field(i), f.Name)
			}
		}
	default:
		panic(fmt.Sprintf("fill: a field %s of kind %s: teach fill (and appendIndented) to write it", name, v.Kind()))
	}
}

// The hand-written encoder writes every field of a descriptor: one
// added to Descriptor (or to the types it holds) and not to
// appendIndented would be dropped by Marshal, and refused by Parse.
func TestAppendIndentedEveryField(t *testing.T) {
	var d Descriptor
	fill(reflect.ValueOf(&d).Elem(), "")
	if got, want := append(appendIndented(nil, &d), '\n'), marshalIndent(&d); !bytes.Equal(got, want) {
		t.Fatalf("appendIndented:\n%s\nencoding/json:\n%s", got, want)
	}
}

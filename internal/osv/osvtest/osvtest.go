// Package osvtest checks, in tests, that JSON is a valid OSV record by
// OSV's own schema (validation/schema.json of the module
// github.com/ossf/osv-schema, at the version go.mod requires), with
// github.com/santhosh-tekuri/jsonschema/v6. The schema is read from the
// module cache (`go mod download` fetches it there once, as it fetches
// any module; no test reaches the network itself).
package osvtest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Module is the module holding OSV's schema.
const Module = "github.com/ossf/osv-schema"

var (
	once   sync.Once
	schema *jsonschema.Schema
	err    error
)

// Schema returns OSV's schema, compiled with formats asserted.
func Schema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	once.Do(func() {
		var out []byte
		cmd := exec.Command("go", "mod", "download", "-json", Module)
		cmd.Stderr = os.Stderr
		if out, err = cmd.Output(); err != nil {
			return
		}
		var m struct{ Dir, Version string }
		if err = json.Unmarshal(out, &m); err != nil {
			return
		}
		var f *os.File
		if f, err = os.Open(filepath.Join(m.Dir, "validation", "schema.json")); err != nil {
			return
		}
		defer f.Close()
		var doc any
		if doc, err = jsonschema.UnmarshalJSON(f); err != nil {
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		const url = "https://raw.githubusercontent.com/ossf/osv-schema/main/validation/schema.json"
		if err = c.AddResource(url, doc); err != nil {
			return
		}
		schema, err = c.Compile(url)
	})
	if err != nil {
		t.Fatalf("OSV's schema (%s, validation/schema.json): %v", Module, err)
	}
	return schema
}

// Check returns what OSV's schema finds wrong with data, or nil.
func Check(t testing.TB, data []byte) error {
	t.Helper()
	s := Schema(t)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return s.Validate(doc)
}

// Valid fails the test unless data is a valid OSV record.
func Valid(t testing.TB, what string, data []byte) {
	t.Helper()
	if err := Check(t, data); err != nil {
		t.Errorf("%s is not a valid OSV record by OSV's schema: %v\n%s", what, err, data)
	}
}

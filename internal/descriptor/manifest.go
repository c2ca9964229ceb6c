package descriptor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"cairn.dev/cairn/internal/blob"
)

func invalidManifest(format string, args ...any) error {
	return &invalidError{"invalid manifest", fmt.Sprintf(format, args...)}
}

// ManifestFile is the manifest's file name in a package directory.
const ManifestFile = "cairn-package.yaml"

// Manifest is what a publisher writes: a descriptor without digests, its
// artifacts named by files beside it.
type Manifest struct {
	Name         string       `yaml:"name"`
	Version      string       `yaml:"version"`
	UUID         string       `yaml:"uuid"`
	Summary      string       `yaml:"summary"`
	License      string       `yaml:"license"`
	Dependencies []Dependency `yaml:"dependencies"`
	Artifacts    []struct {
		Kind     string `yaml:"kind"`
		Platform string `yaml:"platform"`
		File     string `yaml:"file"`
	} `yaml:"artifacts"`
}

// ParseManifest decodes a manifest strictly: unknown fields are errors.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, invalidManifest("%d bytes, over the %d-byte cap", len(data), MaxSize)
	}
	var m Manifest
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		var te *yaml.TypeError
		switch {
		case errors.Is(err, io.EOF):
			return nil, invalidManifest("the file is empty")
		case errors.As(err, &te):
			msg := strings.Join(te.Errors, "; ")
			return nil, invalidManifest("%s", strings.ReplaceAll(msg, " not found in type descriptor.Manifest", " is not a manifest field"))
		}
		return nil, invalidManifest("%v", err)
	}
	return &m, nil
}

// FromDir reads DIR/cairn-package.yaml, stores each artifact file in
// store, and returns the descriptor. uuidFor supplies the package's uuid
// when the manifest names none (the index's, or a new one).
func FromDir(ctx context.Context, dir string, store blob.Store, uuidFor func(name string) (string, error)) (*Descriptor, error) {
	mpath := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(mpath)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mpath, err)
	}
	d := &Descriptor{Schema: Schema, Name: m.Name, Version: m.Version, UUID: m.UUID, Summary: m.Summary, License: m.License, Dependencies: m.Dependencies}
	if err := CheckName(d.Name); err != nil {
		return nil, fmt.Errorf("%s: %w", mpath, err)
	}
	if d.UUID == "" {
		if d.UUID, err = uuidFor(d.Name); err != nil {
			return nil, err
		}
	}
	for _, a := range m.Artifacts {
		if !isFileName(a.File) {
			return nil, fmt.Errorf("%s: %w", mpath, invalidManifest("artifact file %q: a plain file name beside the manifest", a.File))
		}
		ref, err := blob.PutFile(ctx, store, filepath.Join(dir, a.File))
		if err != nil {
			return nil, fmt.Errorf("%s: artifact %s: %w", mpath, a.File, err)
		}
		d.Artifacts = append(d.Artifacts, Artifact{Kind: a.Kind, Platform: a.Platform, File: a.File, Ref: ref})
	}
	if err := d.Check(); err != nil {
		return nil, fmt.Errorf("%s: %w", mpath, err)
	}
	return d, nil
}

//go:build !linux

package install

import "os"

// exchange swaps two directories with two renames where the system has no
// atomic exchange: between them, b is briefly absent (its old tree is at
// b + ".cairn-old").
func exchange(a, b string) error {
	old := b + ".cairn-old"
	if err := os.Rename(b, old); err != nil {
		return err
	}
	if err := os.Rename(a, b); err != nil {
		os.Rename(old, b)
		return err
	}
	return os.Rename(old, a)
}

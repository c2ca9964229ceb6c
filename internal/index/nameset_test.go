package index

import (
	"fmt"
	"testing"
)

// A nameSet never forgets a name it was given, past its exact set too,
// rarely says "seen" of one it was not, and stops growing at its
// filter's size.
func TestNameSetBounded(t *testing.T) {
	n := 3 * nameSetExact
	s := newNameSet()
	for i := range n {
		s.add(fmt.Sprintf("acme/p%d", i))
		if i == nameSetExact-1 && s.exact == nil {
			t.Fatalf("the set left its exact map at %d names, before nameSetExact", i+1)
		}
	}
	if s.exact != nil || len(s.bits) != nameSetBits/64 {
		t.Fatalf("after %d names: exact map of %d, filter of %d words; want the filter alone, of %d", n, len(s.exact), len(s.bits), nameSetBits/64)
	}
	for i := range n {
		if name := fmt.Sprintf("acme/p%d", i); !s.has(name) {
			t.Fatalf("%s was added and is not seen", name)
		}
	}
	wrong := 0
	for i := range n {
		if s.has(fmt.Sprintf("other/q%d", i)) {
			wrong++
		}
	}
	// Expected about 3e-10 of them at this load; a few would still be
	// chance, hundreds a broken filter.
	if wrong > 2 {
		t.Errorf("%d of %d names never added are seen", wrong, n)
	}
}

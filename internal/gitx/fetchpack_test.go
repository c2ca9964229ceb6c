package gitx

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func pktLine(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

// TestDemuxPack: a protocol v2 fetch answer gives its pack (side-band 1)
// and nothing else; an error band, an ERR line, a missing pack or a cut
// answer is an error that says so.
func TestDemuxPack(t *testing.T) {
	for _, tc := range []struct {
		name, in, pack, err string
	}{
		{"pack", pktLine("packfile\n") + pktLine("\x01PACK") + pktLine("\x02counting\n") + pktLine("\x01data") + "0000", "PACKdata", ""},
		{"sections before", pktLine("acknowledgments\n") + pktLine("ready\n") + "0001" + pktLine("packfile\n") + pktLine("\x01PACK") + "0000", "PACK", ""},
		{"error band", pktLine("packfile\n") + pktLine("\x01PA") + pktLine("\x03upload-pack: out of memory") + "0000", "PA", "the server failed: upload-pack: out of memory"},
		{"ERR", pktLine("ERR upload-pack: not our ref 5555") + "0000", "", "the server refused: upload-pack: not our ref 5555"},
		{"no pack", pktLine("acknowledgments\n") + "0000", "", "no pack in the answer"},
		{"cut", pktLine("packfile\n") + pktLine("\x01PACK")[:6], "", "malformed git upload-pack answer"},
		{"bad length", "zzzz", "", "malformed git upload-pack answer"},
		{"bad band", pktLine("packfile\n") + pktLine("\x07x") + "0000", "", "side-band 7"},
	} {
		var out bytes.Buffer
		err := demuxPack(bufio.NewReader(strings.NewReader(tc.in)), &out)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
		if tc.err == "" && out.String() != tc.pack {
			t.Errorf("%s: pack %q, want %q", tc.name, out.String(), tc.pack)
		}
	}
}

// FuzzDemuxPack: no answer, however malformed, makes demuxPack panic or
// write anything but band-1 payloads.
func FuzzDemuxPack(f *testing.F) {
	f.Add([]byte(pktLine("packfile\n") + pktLine("\x01PACK") + "0000"))
	f.Add([]byte(pktLine("ERR x") + "0000"))
	f.Add([]byte("0001000"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		err := demuxPack(bufio.NewReader(bytes.NewReader(in)), &out)
		if err != nil && out.Len() > len(in) {
			t.Fatalf("wrote %d bytes of a %d-byte answer", out.Len(), len(in))
		}
		if err != nil && !errors.Is(err, errPackProtocol) && !strings.HasPrefix(err.Error(), "the server") {
			t.Fatalf("error %v is neither a protocol error nor the server's", err)
		}
	})
}

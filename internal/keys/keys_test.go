package keys

import (
	"crypto/ed25519"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func TestGenerateLoadSign(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alice.key")
	pub, err := Generate(path, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(path, "alice"); err == nil {
		t.Fatal("Generate overwrote an existing key")
	}
	s, err := LoadPrivate(path)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Public().Equal(pub) {
		t.Fatal("loaded key differs from generated key")
	}
	sig, err := s.Sign([]byte("msg"))
	if err != nil || !ed25519.Verify(pub, []byte("msg"), sig) {
		t.Fatalf("signature does not verify: %v", err)
	}
	pp, err := LoadPublic(path + ".pub")
	if err != nil || !pp.Equal(pub) {
		t.Fatalf("LoadPublic: %v", err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, want 0600", fi.Mode().Perm())
	}
}

// The fingerprint must be byte-for-byte what OpenSSH prints.
func TestIDMatchesSSHKeygen(t *testing.T) {
	needSSHKeygen(t)
	path := filepath.Join(t.TempDir(), "k")
	pub, err := Generate(path, "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh-keygen", "-lf", path+".pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(out))
	if fields[1] != ID(pub) {
		t.Fatalf("ID = %s, ssh-keygen says %s", ID(pub), fields[1])
	}
	h, err := HexFromID(ID(pub))
	if err != nil || h != IDHex(pub) {
		t.Fatalf("HexFromID = %s, %v; want %s", h, err, IDHex(pub))
	}
}

// A key made by ssh-keygen (a user's existing ~/.ssh/id_ed25519) loads.
func TestLoadSSHKeygenKey(t *testing.T) {
	needSSHKeygen(t)
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	p := filepath.Join(home, ".ssh", "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Setenv("HOME", home)
	t.Setenv("CAIRN_KEY", "")
	t.Setenv("SSH_AUTH_SOCK", "")
	s, err := Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	want, err := LoadPublic(p + ".pub")
	if err != nil || !want.Equal(s.Public()) {
		t.Fatalf("Resolve picked %v, want ~/.ssh/id_ed25519 (%v)", s.Public(), err)
	}
}

// needSSHKeygen skips without OpenSSH's ssh-keygen, except in CI, which
// installs it (.ci/run): there a missing tool is a failure, not a skip.
func needSSHKeygen(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ssh-keygen is missing in CI: .ci/run installs openssh-client")
		}
		t.Skip("ssh-keygen not installed (apt-get install openssh-client)")
	}
}

func TestRejectsOtherAlgorithms(t *testing.T) {
	rsaLine := "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDd user"
	if _, _, err := ParsePublic([]byte(rsaLine)); err == nil {
		t.Fatal("accepted a non-ed25519 key")
	}
}

// serveAgent runs the x/crypto agent protocol server on a real unix socket.
func serveAgent(t *testing.T, priv ed25519.PrivateKey) string {
	t.Helper()
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go agent.ServeAgent(kr, c)
		}
	}()
	return sock
}

func TestAgentSigner(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	sock := serveAgent(t, priv)
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("CAIRN_KEY", "")
	s, err := Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Public().Equal(pub) {
		t.Fatal("agent signer has the wrong key")
	}
	sig, err := s.Sign([]byte("payload"))
	if err != nil || !ed25519.Verify(pub, []byte("payload"), sig) {
		t.Fatalf("agent signature does not verify: %v", err)
	}
	// A .pub file selects that key from the agent.
	dir := t.TempDir()
	sk, _ := ssh.NewPublicKey(pub)
	os.WriteFile(filepath.Join(dir, "a.pub"), ssh.MarshalAuthorizedKey(sk), 0o644)
	if s, err = Resolve(filepath.Join(dir, "a.pub")); err != nil || !s.Public().Equal(pub) {
		t.Fatalf("Resolve(.pub) via agent: %v", err)
	}
	// A .pub of a key the agent does not hold is an error that says so.
	other, _, _ := ed25519.GenerateKey(nil)
	ok, _ := ssh.NewPublicKey(other)
	os.WriteFile(filepath.Join(dir, "b.pub"), ssh.MarshalAuthorizedKey(ok), 0o644)
	if _, err := Resolve(filepath.Join(dir, "b.pub")); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Resolve(unknown .pub) = %v, want ErrNoKey", err)
	}
}

// Keys of small order verify forged signatures under any ed25519 verifier;
// cairn refuses them wherever it parses a key.
func TestWeakKeysRefused(t *testing.T) {
	identity := make([]byte, 32)
	identity[0] = 1 // the neutral point: order 1
	order2 := make([]byte, 32)
	order2[0], order2[31] = 0xec, 0x7f // y = -1: order 2
	for i := 1; i < 31; i++ {
		order2[i] = 0xff
	}
	nonCanonical := make([]byte, 32) // y = p+1, the neutral point again, encoded past p
	nonCanonical[0] = 0xee
	for i := 1; i < 31; i++ {
		nonCanonical[i] = 0xff
	}
	nonCanonical[31] = 0x7f
	for name, k := range map[string][]byte{"identity": identity, "order 2": order2, "non-canonical": nonCanonical} {
		if err := CheckPublic(k); !errors.Is(err, ErrWeakKey) {
			t.Errorf("%s: CheckPublic = %v, want ErrWeakKey", name, err)
		}
		sk, err := ssh.NewPublicKey(ed25519.PublicKey(k))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := ParsePublic(ssh.MarshalAuthorizedKey(sk)); !errors.Is(err, ErrWeakKey) {
			t.Errorf("%s: ParsePublic = %v, want ErrWeakKey", name, err)
		}
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	if err := CheckPublic(pub); err != nil {
		t.Fatalf("a generated key is weak? %v", err)
	}
}

// A key in a directory that does not exist is refused naming the
// directory (a NoDirError, still fs.ErrNotExist), and no directory is made.
func TestGenerateMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	_, err := Generate(filepath.Join(dir, "x.key"), "")
	var nd *NoDirError
	if !errors.As(err, &nd) || nd.Dir != dir || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Generate in a missing directory: %v; want a NoDirError naming %s", err, dir)
	}
	if strings.Contains(err.Error(), ".tmp-") {
		t.Fatalf("error %q names a temporary file", err)
	}
	if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
		t.Fatalf("Generate made the directory: %v", serr)
	}
}

// A key id converts to its digest's hex when it is "SHA256:" and the
// digest in unpadded base64, as DecodeString reads it (which skips
// newlines); CheckID refuses exactly what HexFromID refuses.
// otherSpelling returns the base64 character that differs from c, the
// last of a fingerprint, only in the bits a 32-byte digest leaves unused
// (its last two): a non-strict decoder reads the same digest from it.
func otherSpelling(t *testing.T, c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, c)
	if i < 0 || i&3 != 0 {
		t.Fatalf("%q is not the last character of a canonical fingerprint", c)
	}
	return alphabet[i|1 : i|1+1]
}

func TestHexFromID(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	id := ID(pub)
	b64 := strings.TrimPrefix(id, "SHA256:")
	for _, c := range []struct {
		id string
		ok bool
	}{
		{id, true},
		// The same digest spelled otherwise: a line break inside, or
		// the last character with its unused bits set.
		{"SHA256:" + b64[:20] + "\n" + b64[20:], false},
		{"SHA256:" + b64[:42] + "\r\n" + b64[42:], false},
		{"SHA256:" + b64[:42] + otherSpelling(t, b64[42]), false},
		{"SHA256:" + b64 + "=", false},
		{"SHA256:" + b64[:42], false},
		{"SHA256:" + b64[:42] + "!", false},
		{"SHA256:" + b64[:41] + "\n", false},
		{"SHA256:" + b64[:20] + "\n" + b64[20:42], false},
		{"SHA256:" + strings.ToUpper(b64[:1]) + b64[1:] + "A", false},
		{"sha256:" + b64, false},
		{b64, false},
		{"", false},
	} {
		h, err := HexFromID(c.id)
		if (err == nil) != c.ok || c.ok && h != IDHex(pub) {
			t.Errorf("HexFromID(%q) = %q, %v; want ok %v", c.id, h, err, c.ok)
		}
		if cerr := CheckID(c.id); (cerr == nil) != (err == nil) {
			t.Errorf("CheckID(%q) = %v, HexFromID's error %v", c.id, cerr, err)
		}
	}
}

package keys

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// ErrNoKey is returned by Resolve when no signing key can be found.
var ErrNoKey = errors.New("no signing key")

// agentSigner signs through an ssh-agent. The agent connection is shared
// and guarded, since the agent protocol is one request at a time.
type agentSigner struct {
	mu  sync.Mutex
	ag  agent.ExtendedAgent
	key ssh.PublicKey
	pub ed25519.PublicKey
}

func (s *agentSigner) Public() ed25519.PublicKey { return s.pub }

func (s *agentSigner) Sign(data []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sig, err := s.ag.Sign(s.key, data)
	if err != nil {
		return nil, fmt.Errorf("ssh-agent: sign with %s: %w", ID(s.pub), err)
	}
	if sig.Format != ssh.KeyAlgoED25519 || len(sig.Blob) != ed25519.SignatureSize {
		return nil, fmt.Errorf("ssh-agent: unexpected signature format %q", sig.Format)
	}
	return sig.Blob, nil
}

// AgentSigner connects to the ssh-agent at socket and returns a signer for
// the ed25519 key it holds that equals want, or its first ed25519 key when
// want is nil.
func AgentSigner(socket string, want ed25519.PublicKey) (Signer, error) {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("ssh-agent at %s: %w", socket, err)
	}
	ag := agent.NewClient(conn)
	list, err := ag.List()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh-agent at %s: list keys: %w", socket, err)
	}
	for _, k := range list {
		pk, err := ssh.ParsePublicKey(k.Blob)
		if err != nil {
			continue
		}
		pub, err := edPublic(pk)
		if err != nil {
			continue
		}
		if want == nil || bytes.Equal(want, pub) {
			return &agentSigner{ag: ag, key: pk, pub: pub}, nil
		}
	}
	conn.Close()
	if want != nil {
		return nil, fmt.Errorf("%w: ssh-agent at %s does not hold %s", ErrNoKey, socket, ID(want))
	}
	return nil, fmt.Errorf("%w: ssh-agent at %s holds no ed25519 key", ErrNoKey, socket)
}

// Resolve finds the signing key a command should use: the file named by
// path (a private key, or a .pub whose private half is in the agent); else
// $CAIRN_KEY the same way; else the first ed25519 key of the ssh-agent at
// $SSH_AUTH_SOCK; else ~/.ssh/id_ed25519.
func Resolve(path string) (Signer, error) {
	if path == "" {
		path = os.Getenv("CAIRN_KEY")
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if pub, _, perr := ParsePublic(data); perr == nil {
			if sock == "" {
				return nil, fmt.Errorf("%w: %s is a public key and SSH_AUTH_SOCK is not set: start ssh-agent and ssh-add its private key", ErrNoKey, path)
			}
			return AgentSigner(sock, pub)
		}
		return LoadPrivate(path)
	}
	if sock != "" {
		s, err := AgentSigner(sock, nil)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, ErrNoKey) {
			return nil, err
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".ssh", "id_ed25519")
		if _, err := os.Stat(p); err == nil {
			return LoadPrivate(p)
		}
	}
	return nil, fmt.Errorf("%w: pass --key FILE, set CAIRN_KEY, or load an ed25519 key into ssh-agent", ErrNoKey)
}

package ingressagent

import (
	"bytes"
	"crypto/x509"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/netlabdev/netlab/netlab/rundir"
)

func TestCAFilesAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := LoadOrCreateCA(dir, "netlab test CA")
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.Subject.CommonName != "netlab test CA" {
		t.Errorf("ca cert: IsCA=%v CN=%q", ca.Cert.IsCA, ca.Cert.Subject.CommonName)
	}
	if ca.Cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("ca key algorithm %v, want ECDSA", ca.Cert.PublicKeyAlgorithm)
	}
	for name, want := range map[string]fs.FileMode{dir: 0o700 | fs.ModeDir, filepath.Join(dir, rundir.CAKeyFile): 0o600, filepath.Join(dir, rundir.CACertFile): 0o644} {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s mode %v, want %v", name, st.Mode(), want)
		}
	}
	again, err := LoadOrCreateCA(dir, "ignored")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cert.Equal(ca.Cert) {
		t.Error("second LoadOrCreateCA made a new CA instead of loading the existing one")
	}
	// A certificate issued by the reloaded CA verifies against the original's pool.
	leaf, err := again.Issue("app.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "app.example", Roots: ca.Pool()}); err != nil {
		t.Errorf("verify: %v", err)
	}

	// Half a CA directory is an error, and nothing is overwritten.
	half := t.TempDir()
	if err := os.WriteFile(filepath.Join(half, rundir.CACertFile), ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(half, "x"); err == nil {
		t.Error("LoadOrCreateCA accepted a directory with only ca.crt")
	}
	if b, _ := os.ReadFile(filepath.Join(half, rundir.CACertFile)); !bytes.Equal(b, ca.CertPEM) {
		t.Error("ca.crt was overwritten")
	}
	// A key that is not the certificate's is refused.
	other := t.TempDir()
	ca2, err := LoadOrCreateCA(other, "other")
	if err != nil {
		t.Fatal(err)
	}
	key2, _ := ca2.KeyPEM()
	if err := os.WriteFile(filepath.Join(other, rundir.CAKeyFile), key2, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, rundir.CACertFile), ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCA(other); err == nil {
		t.Error("ReadCA accepted a certificate with another CA's key")
	}
}

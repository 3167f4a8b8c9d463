package rundir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/netlabdev/netlab/netlab/ingress"
)

// CA file names in a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// CACert is the lab CA's certificate (for curl --cacert).
func (d Dir) CACert() string { return filepath.Join(d.CA(), CACertFile) }

// ReadCA reads ca.crt and ca.key from dir and checks that they belong together.
func ReadCA(dir string) (*ingress.CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("read ca certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("read ca key: %w", err)
	}
	ca, err := ingress.ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca from %s: %w", dir, err)
	}
	return ca, nil
}

// WriteCA writes ca to dir (created 0700): ca.crt (0644) and ca.key (0600), each
// written atomically.
func WriteCA(dir string, ca *ingress.CA) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create ca directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict ca directory: %w", err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, CACertFile), ca.CertPEM, 0o644)
}

// LoadOrCreateCA loads the CA in dir, or creates and saves one named commonName when dir
// holds none. It holds dir/.lock meanwhile, so the ingress agents of several nodes
// starting at once agree on one CA. A directory with only one of the two files is an
// error (nothing is overwritten).
func LoadOrCreateCA(dir, commonName string) (*ingress.CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ca lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("ca lock: %w", err)
	}
	defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()

	_, errCert := os.Stat(filepath.Join(dir, CACertFile))
	_, errKey := os.Stat(filepath.Join(dir, CAKeyFile))
	switch {
	case errCert == nil && errKey == nil:
		return ReadCA(dir)
	case errors.Is(errCert, fs.ErrNotExist) && errors.Is(errKey, fs.ErrNotExist):
		ca, err := ingress.NewCA(commonName)
		if err != nil {
			return nil, err
		}
		if err := WriteCA(dir, ca); err != nil {
			return nil, err
		}
		return ca, nil
	case errCert != nil && !errors.Is(errCert, fs.ErrNotExist):
		return nil, fmt.Errorf("stat ca certificate: %w", errCert)
	case errKey != nil && !errors.Is(errKey, fs.ErrNotExist):
		return nil, fmt.Errorf("stat ca key: %w", errKey)
	default:
		return nil, fmt.Errorf("ca directory %s holds only one of %s and %s", dir, CACertFile, CAKeyFile)
	}
}

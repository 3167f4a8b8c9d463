package rundir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CA file names in a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// CACert is the lab CA's certificate (for curl --cacert).
func (d Dir) CACert() string { return filepath.Join(d.CA(), CACertFile) }

// ReadCAFiles reads ca.crt and ca.key (PEM) from a CA directory. This package keeps the
// files; what they hold is the ingress's (ingress.ParseCA), which it does not import, so
// that the agents that never touch the CA need not initialise the ingress's packages.
func ReadCAFiles(dir string) (certPEM, keyPEM []byte, err error) {
	if certPEM, err = os.ReadFile(filepath.Join(dir, CACertFile)); err != nil {
		return nil, nil, fmt.Errorf("read ca certificate: %w", err)
	}
	if keyPEM, err = os.ReadFile(filepath.Join(dir, CAKeyFile)); err != nil {
		return nil, nil, fmt.Errorf("read ca key: %w", err)
	}
	return certPEM, keyPEM, nil
}

// WriteCAFiles writes a CA to dir (created 0700): ca.crt (0644) and ca.key (0600), each
// written atomically.
func WriteCAFiles(dir string, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create ca directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict ca directory: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, CACertFile), certPEM, 0o644)
}

// LoadOrCreateCAFiles reads the CA in dir, or makes one with create and writes it when dir
// holds none, and returns its files. It holds dir/.lock meanwhile, so the ingress agents of
// several nodes starting at once agree on one CA. A directory with only one of the two
// files is an error (nothing is overwritten).
func LoadOrCreateCAFiles(dir string, create func() (certPEM, keyPEM []byte, err error)) (certPEM, keyPEM []byte, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("ca directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("ca lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return nil, nil, fmt.Errorf("ca lock: %w", err)
	}
	defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()

	_, errCert := os.Stat(filepath.Join(dir, CACertFile))
	_, errKey := os.Stat(filepath.Join(dir, CAKeyFile))
	switch {
	case errCert == nil && errKey == nil:
		return ReadCAFiles(dir)
	case errors.Is(errCert, fs.ErrNotExist) && errors.Is(errKey, fs.ErrNotExist):
		if certPEM, keyPEM, err = create(); err != nil {
			return nil, nil, err
		}
		if err := WriteCAFiles(dir, certPEM, keyPEM); err != nil {
			return nil, nil, err
		}
		return certPEM, keyPEM, nil
	case errCert != nil && !errors.Is(errCert, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("stat ca certificate: %w", errCert)
	case errKey != nil && !errors.Is(errKey, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("stat ca key: %w", errKey)
	default:
		return nil, nil, fmt.Errorf("ca directory %s holds only one of %s and %s", dir, CACertFile, CAKeyFile)
	}
}

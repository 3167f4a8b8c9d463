package ingressagent

import (
	"fmt"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// ReadCA reads the lab CA in dir (ca.crt and ca.key) and checks that they belong together.
func ReadCA(dir string) (*ingress.CA, error) {
	certPEM, keyPEM, err := rundir.ReadCAFiles(dir)
	if err != nil {
		return nil, err
	}
	ca, err := ingress.ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca from %s: %w", dir, err)
	}
	return ca, nil
}

// LoadOrCreateCA loads the lab CA in dir, or creates and saves one named commonName when
// dir holds none (rundir.LoadOrCreateCAFiles: under dir's lock, so the ingress agents of
// several nodes starting at once agree on one CA).
func LoadOrCreateCA(dir, commonName string) (*ingress.CA, error) {
	var made *ingress.CA
	certPEM, keyPEM, err := rundir.LoadOrCreateCAFiles(dir, func() ([]byte, []byte, error) {
		ca, err := ingress.NewCA(commonName)
		if err != nil {
			return nil, nil, err
		}
		keyPEM, err := ca.KeyPEM()
		if err != nil {
			return nil, nil, err
		}
		made = ca
		return ca.CertPEM, keyPEM, nil
	})
	if err != nil {
		return nil, err
	}
	if made != nil {
		return made, nil
	}
	ca, err := ingress.ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca from %s: %w", dir, err)
	}
	return ca, nil
}

package ingress

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Validity periods.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	clockSkew    = time.Hour
)

// CA is the lab's certificate authority (ECDSA P-256).
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// NewCA makes a new self-signed CA named commonName, in memory.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ca key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"netlab"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse ca certificate: %w", err)
	}
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// ParseCA turns a CA's certificate and key (PEM) back into a CA, checking that they
// belong together and that the certificate is a CA's.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA", pair.PrivateKey)
	}
	if !pair.Leaf.IsCA {
		return nil, errors.New("certificate is not a CA")
	}
	return &CA{Cert: pair.Leaf, CertPEM: certPEM, key: key}, nil
}

// KeyPEM is the CA's private key, PKCS #8 in PEM, for saving it.
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("encode ca key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Pool returns a cert pool holding only the CA, for clients.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue makes a server certificate for hosts (DNS names, "*." wildcards, IP addresses),
// signed by the CA, with a fresh ECDSA P-256 key. The first host is the common name.
func (ca *CA) Issue(hosts ...string) (*tls.Certificate, error) {
	if len(hosts) == 0 {
		return nil, errors.New("issue certificate: no hosts")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"netlab"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, lowerASCII(h))
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", strings.Join(hosts, ","), err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: parse: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: crypto.Signer(key), Leaf: leaf}, nil
}

func randomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// CertStore picks a server certificate by SNI: a certificate registered for the exact
// name, else one registered for "*." + the name without its first label, else the
// default. It is immutable once built; CertSelector swaps whole stores.
type CertStore struct {
	exact    map[string]*tls.Certificate
	wildcard map[string]*tls.Certificate // keyed by the suffix after "*."
	def      *tls.Certificate
}

// NewCertStore makes an empty store answering def for every name.
func NewCertStore(def *tls.Certificate) *CertStore {
	return &CertStore{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}, def: def}
}

// Add registers cert for hosts (the cert's own DNS names when hosts is empty). A host
// that already has a certificate keeps it: the first registration wins.
func (s *CertStore) Add(cert *tls.Certificate, hosts ...string) {
	if len(hosts) == 0 && cert.Leaf != nil {
		hosts = cert.Leaf.DNSNames
	}
	for _, h := range hosts {
		h = lowerASCII(strings.TrimSuffix(h, "."))
		m, key := s.exact, h
		if suffix, ok := strings.CutPrefix(h, "*."); ok {
			m, key = s.wildcard, suffix
		}
		if _, taken := m[key]; !taken && key != "" {
			m[key] = cert
		}
	}
}

// Get returns the certificate for a server name (case and a trailing dot ignored).
func (s *CertStore) Get(serverName string) *tls.Certificate {
	name := lowerASCII(strings.TrimSuffix(serverName, "."))
	if c := s.exact[name]; c != nil {
		return c
	}
	if suffix, ok := wildcardSuffix(name); ok {
		if c := s.wildcard[suffix]; c != nil {
			return c
		}
	}
	return s.def
}

// Default returns the default certificate.
func (s *CertStore) Default() *tls.Certificate { return s.def }

// Names returns the registered names (wildcards with their "*."), sorted.
func (s *CertStore) Names() []string {
	out := make([]string, 0, len(s.exact)+len(s.wildcard))
	for h := range s.exact {
		out = append(out, h)
	}
	for h := range s.wildcard {
		out = append(out, "*."+h)
	}
	sort.Strings(out)
	return out
}

// CertSelector serves certificates from a CertStore that can be swapped atomically
// (a reload); handshakes in progress keep the store they started with.
type CertSelector struct {
	store atomic.Pointer[CertStore]
}

// NewCertSelector returns a selector serving s.
func NewCertSelector(s *CertStore) *CertSelector {
	cs := &CertSelector{}
	cs.store.Store(s)
	return cs
}

// Swap replaces the store.
func (cs *CertSelector) Swap(s *CertStore) { cs.store.Store(s) }

// GetCertificate is a tls.Config.GetCertificate.
func (cs *CertSelector) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s := cs.store.Load()
	if s == nil {
		return nil, errors.New("no certificates loaded")
	}
	c := s.Get(hello.ServerName)
	if c == nil {
		return nil, fmt.Errorf("no certificate for %q and no default", hello.ServerName)
	}
	return c, nil
}

// TLSConfig is the server TLS configuration: TLS 1.2+, certificates by SNI, HTTP/2
// offered first in ALPN.
func (cs *CertSelector) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cs.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// BuildCertStore builds the certificates for an Ingress table. Entries whose secretName
// names a kubernetes.io/tls Secret in the Ingress's namespace use that Secret's
// tls.crt/tls.key, and win over issued certificates for the same host; the other entries
// (and those whose Secret is missing or unusable, with a warning) get a certificate
// issued by ca for their hosts. An entry without hosts covers the hosts of its Ingress's
// rules; its Secret's certificate is also the default one (for names no entry covers and
// clients sending no SNI: the API's "defaults to the wildcard host"), the first such entry
// in Ingress order winning. def is the default certificate otherwise; nil issues one from
// ca for defaultHosts.
func BuildCertStore(ca *CA, t *Table, secrets []Secret, def *tls.Certificate, defaultHosts ...string) (*CertStore, []string, error) {
	var warns []string
	if def == nil {
		if ca == nil {
			return nil, nil, errors.New("build certificates: no default certificate and no ca")
		}
		if len(defaultHosts) == 0 {
			defaultHosts = []string{"netlab-ingress-default"}
		}
		c, err := ca.Issue(defaultHosts...)
		if err != nil {
			return nil, nil, fmt.Errorf("default certificate: %w", err)
		}
		def = c
	}
	store := NewCertStore(def)

	bySecret := map[string]*Secret{}
	for i := range secrets {
		s := &secrets[i]
		ns := s.Namespace
		if ns == "" {
			ns = "default"
		}
		bySecret[ns+"/"+s.Name] = s
	}
	entries := t.TLS()
	hostsOf := func(e TLSEntry) []string {
		if len(e.Hosts) > 0 {
			return e.Hosts
		}
		var hs []string
		for _, r := range t.routes {
			if r.Ingress == e.Ingress && r.Host != "" {
				hs = append(hs, r.Host)
			}
		}
		return uniqueSorted(hs)
	}
	// Pass 1: certificates from Secrets.
	issued := make([]bool, len(entries))
	for i, e := range entries {
		if e.SecretName == "" {
			continue
		}
		s := bySecret[e.Namespace+"/"+e.SecretName]
		if s == nil {
			warns = append(warns, fmt.Sprintf("ingress %s: tls secret %s/%s not found; issuing a certificate from the lab ca", e.Ingress, e.Namespace, e.SecretName))
			continue
		}
		cert, err := certFromSecret(s)
		if err != nil {
			warns = append(warns, fmt.Sprintf("ingress %s: tls secret %s/%s: %v; issuing a certificate from the lab ca", e.Ingress, e.Namespace, e.SecretName, err))
			continue
		}
		store.Add(cert, hostsOf(e)...)
		issued[i] = true
		if len(e.Hosts) == 0 && store.def == def {
			store.def = cert
		}
	}
	// Pass 2: certificates from the CA for what no Secret covered.
	for i, e := range entries {
		if issued[i] {
			continue
		}
		var need []string
		for _, h := range hostsOf(e) {
			if store.Get(h) == def { // not covered yet (a Secret's wildcard counts)
				need = append(need, h)
			}
		}
		if len(need) == 0 {
			continue
		}
		if ca == nil {
			warns = append(warns, fmt.Sprintf("ingress %s: no lab ca to issue a certificate for %s; the default certificate answers", e.Ingress, strings.Join(need, ",")))
			continue
		}
		c, err := ca.Issue(need...)
		if err != nil {
			return nil, warns, fmt.Errorf("ingress %s: %w", e.Ingress, err)
		}
		store.Add(c, need...)
	}
	return store, warns, nil
}

// certFromSecret loads tls.crt/tls.key of a kubernetes.io/tls Secret (from data, or
// stringData when the scenario used it).
func certFromSecret(s *Secret) (*tls.Certificate, error) {
	if s.Type != "" && s.Type != SecretTypeTLS {
		return nil, fmt.Errorf("type is %q, want %q", s.Type, SecretTypeTLS)
	}
	get := func(k string) []byte {
		if v, ok := s.Data[k]; ok {
			return v
		}
		if v, ok := s.StringData[k]; ok {
			return []byte(v)
		}
		return nil
	}
	crt, key := get(TLSCertKey), get(TLSPrivateKeyKey)
	if len(crt) == 0 || len(key) == 0 {
		return nil, fmt.Errorf("needs both %s and %s", TLSCertKey, TLSPrivateKeyKey)
	}
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		return nil, fmt.Errorf("parse key pair: %w", err)
	}
	return &pair, nil
}

func uniqueSorted(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		s = lowerASCII(s)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

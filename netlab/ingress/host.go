package ingress

import (
	"path"
	"strings"
)

// NormalizeHost turns a Host header (or an SNI name) into the form the routing table
// matches on: the port removed, ASCII letters lower-cased, one trailing dot removed, an
// IPv6 literal without its brackets. ok is false when the value is malformed (a
// non-numeric port, an unclosed bracket, junk after "]", an empty label); the host is then "" and the
// request can only match rules without a host.
func NormalizeHost(h string) (host string, ok bool) {
	if h == "" {
		return "", true
	}
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", false
		}
		rest := h[end+1:]
		if rest != "" && (rest[0] != ':' || !isPort(rest[1:])) {
			return "", false
		}
		if inner := h[1:end]; !strings.Contains(inner, ":") || strings.ContainsAny(inner, "[]/ ") {
			return "", false // not an IPv6 literal
		}
		return lowerASCII(h[1:end]), true
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if strings.IndexByte(h[:i], ':') >= 0 {
			// A bare IPv6 address (several colons, no brackets): keep it whole.
			return lowerASCII(h), true
		}
		if !isPort(h[i+1:]) {
			return "", false
		}
		h = h[:i]
	}
	// An empty label inside or at the end (two dots in a row, two trailing dots, a Host
	// that is only a dot) is malformed: nginx answers 400 for these
	// (ngx_http_validate_host), and so does the ingress. A leading dot nginx lets through,
	// and so does the ingress.
	name := strings.TrimSuffix(h, ".")
	if (name == "" && h != "") || strings.Contains(name, "..") || strings.HasSuffix(name, ".") {
		return "", false
	}
	return lowerASCII(name), true
}

// isPort reports whether s is empty or all decimal digits (at most 5).
func isPort(s string) bool {
	if len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// lowerASCII lower-cases ASCII letters without allocating when there is nothing to do.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// wildcardSuffix returns the part of host after its first DNS label ("foo.com" for
// "bar.foo.com"), which is the key a "*.foo.com" rule is stored under. ok is false when
// host has a single label or an empty first label.
func wildcardSuffix(host string) (suffix string, ok bool) {
	i := strings.IndexByte(host, '.')
	if i <= 0 || i == len(host)-1 {
		return "", false
	}
	return host[i+1:], true
}

// MatchHost reports whether a request host (as NormalizeHost returns it) matches an
// Ingress rule host: equal for a precise host; for "*.suffix", the request host must be
// exactly one non-empty DNS label followed by ".suffix". An empty rule host matches any
// request host.
func MatchHost(rule, host string) bool {
	rule = lowerASCII(rule)
	if rule == "" {
		return true
	}
	if suffix, ok := strings.CutPrefix(rule, "*."); ok {
		s, ok := wildcardSuffix(host)
		return ok && s == suffix
	}
	return rule == host
}

// checkRuleHost returns why an Ingress rule host is invalid, or "" when it is fine.
// The API server validates these; a scenario file is not validated by one, so the table
// checks again and skips bad rules with a warning.
func checkRuleHost(h string) string {
	if strings.ContainsAny(h, ":/[] ") {
		return "host must be a DNS name without port"
	}
	if h == "*" {
		return `host "*" alone is not allowed; use a rule without host`
	}
	rest := h
	if strings.HasPrefix(h, "*.") {
		rest = h[2:]
	}
	if strings.Contains(rest, "*") {
		return `the wildcard "*" may only be the whole first DNS label`
	}
	if rest == "" || strings.HasPrefix(rest, ".") || strings.HasSuffix(rest, ".") || strings.Contains(rest, "..") {
		return "host is not a valid DNS name"
	}
	return ""
}

// cleanRequestPath is the path the table matches on: rooted, with "." and ".." segments
// and repeated slashes resolved (so "/public/../admin" is matched as "/admin", the path a
// backend would serve), keeping a trailing slash. The request is forwarded unchanged.
func cleanRequestPath(p string) string {
	if p == "" || p == "/" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	if !needsClean(p) {
		return p
	}
	c := path.Clean(p)
	if c != "/" && strings.HasSuffix(p, "/") {
		c += "/"
	}
	return c
}

// needsClean reports whether p has "//", a "." or ".." segment.
func needsClean(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		rest := p[i+1:]
		if rest == "" {
			return false
		}
		if rest[0] == '/' {
			return true
		}
		if rest[0] == '.' {
			if len(rest) == 1 || rest[1] == '/' {
				return true
			}
			if rest[1] == '.' && (len(rest) == 2 || rest[2] == '/') {
				return true
			}
		}
	}
	return false
}

// trimPrefixPath turns a Prefix rule path into its matching key: trailing slashes are
// dropped ("/foo/" and "/foo" match the same requests) except for the root "/".
func trimPrefixPath(p string) string {
	for len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	return p
}

// matchPrefix reports whether request path req matches the Prefix key p (as
// trimPrefixPath returns it) element by element: p must equal req, or be followed in req
// by "/". "/" matches everything.
func matchPrefix(p, req string) bool {
	if p == "/" {
		return true
	}
	if !strings.HasPrefix(req, p) {
		return false
	}
	return len(req) == len(p) || req[len(p)] == '/'
}

package ingress

import (
	"strings"
	"testing"
)

// prefixReference is the Kubernetes definition of a Prefix match written independently:
// split both paths on "/", ignore the rule's trailing slashes, and require the rule's
// elements to be a prefix of the request's elements.
func prefixReference(rule, req string) bool {
	re := strings.Split(strings.TrimRight(rule, "/"), "/")
	qe := strings.Split(req, "/")
	if len(re) > len(qe) {
		return false
	}
	for i := range re {
		if re[i] != qe[i] {
			return false
		}
	}
	return true
}

// FuzzPathMatch checks the table's path matching against prefixReference and the Exact
// definition, and the request path cleaner's invariants.
func FuzzPathMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"/foo", "/foo/bar"}, {"/foo/", "/foo"}, {"/aaa/bb", "/aaa/bbb"}, {"/", "/x"},
		{"/a//b", "/a//b"}, {"/x", "/x/../y"}, {"//", "/"}, {"/a/./b", "/a/b/"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rule, rawReq string) {
		req := cleanRequestPath(rawReq)
		if !strings.HasPrefix(req, "/") {
			t.Fatalf("cleanRequestPath(%q) = %q is not rooted", rawReq, req)
		}
		if again := cleanRequestPath(req); again != req {
			t.Fatalf("cleanRequestPath not idempotent: %q -> %q -> %q", rawReq, req, again)
		}
		if needsClean(req) {
			t.Fatalf("cleanRequestPath(%q) = %q still has empty or dot segments", rawReq, req)
		}
		if !strings.HasPrefix(rule, "/") {
			return // Build skips such rules
		}
		table, warns := Build([]Ingress{mkIngress("default", "f", mkRule("",
			mkPath(rule, prefix, "prefix")))}, "")
		if len(warns) != 0 {
			t.Fatal(warns)
		}
		_, got := table.Match("", rawReq)
		if want := prefixReference(rule, req); got != want {
			t.Fatalf("Prefix %q vs request %q (clean %q): match=%v, want %v", rule, rawReq, req, got, want)
		}
		table, _ = Build([]Ingress{mkIngress("default", "f", mkRule("",
			mkPath(rule, exact, "exact")))}, "")
		if _, got := table.Match("", rawReq); got != (rule == req) {
			t.Fatalf("Exact %q vs request %q (clean %q): match=%v", rule, rawReq, req, got)
		}
	})
}

// FuzzHost checks NormalizeHost (never panics, lower-cases, drops the port, idempotent)
// and wildcard matching against its definition.
func FuzzHost(f *testing.F) {
	for _, s := range []string{"Foo.Example.com:8080", "[::1]:80", "a.example.com.", "x:y", "", "*.example.com", "[", "1.2.3.4:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, ok := NormalizeHost(in)
		if !ok && h != "" {
			t.Fatalf("NormalizeHost(%q) = %q but not ok", in, h)
		}
		if strings.ContainsAny(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Fatalf("NormalizeHost(%q) = %q has upper-case ASCII", in, h)
		}
		if !strings.Contains(h, ":") {
			if again, ok2 := NormalizeHost(h); ok && (!ok2 || again != strings.TrimSuffix(h, ".")) {
				t.Fatalf("NormalizeHost not idempotent: %q -> %q -> %q (%v)", in, h, again, ok2)
			}
		}
		const suffix = ".example.com"
		label, found := strings.CutSuffix(h, suffix)
		want := found && label != "" && !strings.Contains(label, ".")
		if got := MatchHost("*"+suffix, h); got != want {
			t.Fatalf("MatchHost(*%s, %q) = %v, want %v", suffix, h, got, want)
		}
	})
}

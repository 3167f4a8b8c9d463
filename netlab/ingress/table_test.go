package ingress

import (
	"strings"
	"testing"
	"time"
)

// Builders for Ingress objects in tests.

func mkIngress(ns, name string, rules ...IngressRule) Ingress {
	return Ingress{
		ObjectMeta: ObjectMeta{Namespace: ns, Name: name},
		Spec:       IngressSpec{Rules: rules},
	}
}

func mkRule(host string, paths ...HTTPIngressPath) IngressRule {
	return IngressRule{
		Host:             host,
		IngressRuleValue: IngressRuleValue{HTTP: &HTTPIngressRuleValue{Paths: paths}},
	}
}

func mkPath(p string, pt PathType, svc string) HTTPIngressPath {
	return HTTPIngressPath{Path: p, PathType: &pt, Backend: svcBackend(svc, 80)}
}

func svcBackend(name string, port int32) IngressBackend {
	return IngressBackend{Service: &IngressServiceBackend{
		Name: name, Port: ServiceBackendPort{Number: port},
	}}
}

const (
	exact    = PathTypeExact
	prefix   = PathTypePrefix
	implSpec = PathTypeImplementationSpecific
)

// TestKubernetesPathExamples is the "Examples" table of the Kubernetes Ingress concept
// page (https://kubernetes.io/docs/concepts/services-networking/ingress/#examples), row
// by row. Each rule path gets its own Service so the test sees which one matched; the
// Ingress also has a defaultBackend, which answers when the table says "No".
func TestKubernetesPathExamples(t *testing.T) {
	type p struct {
		path string
		typ  PathType
	}
	rows := []struct {
		kind     string
		paths    []p
		requests []string
		want     string // the rule path that matches, "" for no match
	}{
		{"Prefix", []p{{"/", prefix}}, []string{"/", "/foo", "/foo/bar", "/aaa/bbb/", "/x.y"}, "/"},
		{"Exact", []p{{"/foo", exact}}, []string{"/foo"}, "/foo"},
		{"Exact", []p{{"/foo", exact}}, []string{"/bar"}, ""},
		{"Exact", []p{{"/foo", exact}}, []string{"/foo/"}, ""},
		{"Exact", []p{{"/foo/", exact}}, []string{"/foo"}, ""},
		{"Prefix", []p{{"/foo", prefix}}, []string{"/foo", "/foo/"}, "/foo"},
		{"Prefix", []p{{"/foo/", prefix}}, []string{"/foo", "/foo/"}, "/foo/"},
		{"Prefix", []p{{"/aaa/bb", prefix}}, []string{"/aaa/bbb"}, ""},
		{"Prefix", []p{{"/aaa/bbb", prefix}}, []string{"/aaa/bbb"}, "/aaa/bbb"},
		{"Prefix", []p{{"/aaa/bbb/", prefix}}, []string{"/aaa/bbb"}, "/aaa/bbb/"},      // ignores trailing slash
		{"Prefix", []p{{"/aaa/bbb", prefix}}, []string{"/aaa/bbb/"}, "/aaa/bbb"},       // matches trailing slash
		{"Prefix", []p{{"/aaa/bbb", prefix}}, []string{"/aaa/bbb/ccc"}, "/aaa/bbb"},    // matches subpath
		{"Prefix", []p{{"/aaa/bbb", prefix}}, []string{"/aaa/bbbxyz"}, ""},             // not a string prefix
		{"Prefix", []p{{"/", prefix}, {"/aaa", prefix}}, []string{"/aaa/ccc"}, "/aaa"}, // matches /aaa prefix
		{"Prefix", []p{{"/", prefix}, {"/aaa", prefix}, {"/aaa/bbb", prefix}}, []string{"/aaa/bbb"}, "/aaa/bbb"},
		{"Prefix", []p{{"/", prefix}, {"/aaa", prefix}, {"/aaa/bbb", prefix}}, []string{"/ccc"}, "/"},
		{"Prefix", []p{{"/aaa", prefix}}, []string{"/ccc"}, ""}, // uses default backend
		{"Mixed", []p{{"/foo", prefix}, {"/foo", exact}}, []string{"/foo"}, "/foo Exact"},
	}
	for _, row := range rows {
		for _, withDefault := range []bool{true, false} {
			var paths []HTTPIngressPath
			for _, rp := range row.paths {
				paths = append(paths, mkPath(rp.path, rp.typ, "svc "+rp.path+" "+string(rp.typ)))
			}
			ing := mkIngress("default", "ex", mkRule("", paths...))
			if withDefault {
				db := svcBackend("default-backend", 80)
				ing.Spec.DefaultBackend = &db
			}
			table, warns := Build([]Ingress{ing}, "")
			if len(warns) != 0 {
				t.Fatalf("row %v: unexpected warnings %v", row, warns)
			}
			for _, req := range row.requests {
				got, ok := table.Match("example.com", req)
				name := row.kind + " " + req
				switch {
				case row.want == "" && withDefault:
					if !ok || !got.Default || got.ServiceName != "default-backend" {
						t.Errorf("%s with rules %v: got %+v ok=%v, want the default backend", name, row.paths, got, ok)
					}
				case row.want == "":
					if ok {
						t.Errorf("%s with rules %v: got %+v, want no match", name, row.paths, got)
					}
				default:
					wantPath, wantType, _ := strings.Cut(row.want, " ")
					if !ok || got.Default || got.Path != wantPath {
						t.Errorf("%s with rules %v: got %+v ok=%v, want rule path %q", name, row.paths, got, ok, wantPath)
					}
					if wantType != "" && string(got.PathType) != wantType {
						t.Errorf("%s: got path type %s, want %s", name, got.PathType, wantType)
					}
				}
			}
		}
	}
}

// TestKubernetesHostnameWildcards is the "Hostname wildcards" table of the Kubernetes
// Ingress concept page, plus the rules around it: the port and case of the Host header
// do not matter, a precise host must be equal.
func TestKubernetesHostnameWildcards(t *testing.T) {
	rows := []struct {
		rule, header string
		match        bool
	}{
		// The documentation's table.
		{"*.foo.com", "bar.foo.com", true},      // matches based on shared suffix
		{"*.foo.com", "baz.bar.foo.com", false}, // wildcard only covers a single DNS label
		{"*.foo.com", "foo.com", false},         // wildcard only covers a single DNS label
		// Around it.
		{"*.foo.com", "BAR.Foo.COM:8080", true},
		{"*.foo.com", ".foo.com", false},
		{"*.foo.com", "barfoo.com", false},
		{"foo.bar.com", "foo.bar.com", true},
		{"foo.bar.com", "FOO.bar.com:80", true},
		{"foo.bar.com", "foo.bar.com.", true},
		{"foo.bar.com", "x.foo.bar.com", false},
		{"foo.bar.com", "bar.com", false},
		{"Foo.Bar.com", "foo.bar.com", true},
	}
	for _, r := range rows {
		table, warns := Build([]Ingress{
			mkIngress("default", "h", mkRule(r.rule, mkPath("/", prefix, "svc"))),
		}, "")
		if len(warns) != 0 {
			t.Fatalf("rule %q: warnings %v", r.rule, warns)
		}
		got, ok := table.Match(r.header, "/")
		if ok != r.match {
			t.Errorf("rule %q, Host %q: match=%v (%+v), want %v", r.rule, r.header, ok, got, r.match)
		}
		h, _ := NormalizeHost(r.header)
		if MatchHost(r.rule, h) != r.match {
			t.Errorf("MatchHost(%q, %q) = %v, want %v", r.rule, h, !r.match, r.match)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{"Example.COM", "example.com", true},
		{"example.com:8080", "example.com", true},
		{"example.com.", "example.com", true},
		{"example.com.:443", "example.com", true},
		{"[::1]:80", "::1", true},
		{"[FE80::1]", "fe80::1", true},
		{"::1", "::1", true},
		{"10.0.0.1:80", "10.0.0.1", true},
		{"example.com:http", "", false},
		{"[::1", "", false},
		{"[::1]x", "", false},
		{"example.com:123456", "", false},
		{".example.com", ".example.com", true}, // a leading dot, as nginx lets through
		{":80", "", true},
		{"a..b", "", false},
		{"example.com..", "", false},
		{".", "", false},
		{".:80", "", false},
	}
	for _, c := range cases {
		got, ok := NormalizeHost(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("NormalizeHost(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestHostPrecedenceExactWildcardAny(t *testing.T) {
	table, warns := Build([]Ingress{
		mkIngress("default", "any", mkRule("", mkPath("/", prefix, "any"))),
		mkIngress("default", "wild", mkRule("*.example.com", mkPath("/", prefix, "wild"))),
		mkIngress("default", "exact", mkRule("app.example.com", mkPath("/api", prefix, "exact-api"))),
	}, "")
	if len(warns) != 0 {
		t.Fatal(warns)
	}
	cases := []struct {
		host, path, svc string
		ok              bool
	}{
		{"app.example.com", "/api/v1", "exact-api", true},
		// The host is chosen first: app.example.com has no rule for /other, and the
		// request does not fall through to the wildcard or host-less rules.
		{"app.example.com", "/other", "", false},
		{"web.example.com", "/x", "wild", true},
		{"a.b.example.com", "/x", "any", true},
		{"example.com", "/x", "any", true},
		{"", "/x", "any", true},
		{"10.1.2.3:80", "/x", "any", true},
	}
	for _, c := range cases {
		got, ok := table.Match(c.host, c.path)
		if ok != c.ok || got.ServiceName != c.svc {
			t.Errorf("Match(%q, %q) = %s, %v; want %s, %v", c.host, c.path, got.ServiceName, ok, c.svc, c.ok)
		}
	}
}

func TestMergeAcrossIngresses(t *testing.T) {
	older := mkIngress("default", "zz-older", mkRule("app.example", mkPath("/dup", prefix, "from-older")))
	older.CreationTimestamp = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	newer := mkIngress("default", "aa-newer", mkRule("app.example", mkPath("/dup/", prefix, "from-newer")))
	newer.CreationTimestamp = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)

	ings := []Ingress{
		mkIngress("default", "web", mkRule("app.example", mkPath("/", prefix, "web"))),
		mkIngress("default", "api", mkRule("APP.example", mkPath("/api", prefix, "api"))),
		mkIngress("default", "b-exact", mkRule("app.example", mkPath("/api", exact, "api-exact"))),
		mkIngress("default", "c-same", mkRule("app.example", mkPath("/same", prefix, "c"))),
		mkIngress("default", "b-same", mkRule("app.example", mkPath("/same", implSpec, "b"))),
		newer, older,
	}
	table, warns := Build(ings, "netlab")

	cases := []struct{ path, svc, ingress string }{
		{"/", "web", "default/web"},
		{"/api/users", "api", "default/api"},
		{"/api", "api-exact", "default/b-exact"}, // Exact wins at equal length, whatever the order
		{"/same/x", "b", "default/b-same"},       // equal rules: namespace/name order, b before c
		{"/dup", "from-older", "default/zz-older"},
	}
	for _, c := range cases {
		got, ok := table.Match("app.example", c.path)
		if !ok || got.ServiceName != c.svc || got.Ingress != c.ingress {
			t.Errorf("Match(app.example, %s) = %+v, %v; want %s from %s", c.path, got, ok, c.svc, c.ingress)
		}
	}
	// The result does not depend on the input order.
	rev := make([]Ingress, len(ings))
	for i := range ings {
		rev[len(ings)-1-i] = ings[i]
	}
	table2, warns2 := Build(rev, "netlab")
	if a, b := routeKeys(table.Routes()), routeKeys(table2.Routes()); a != b {
		t.Errorf("route order depends on input order:\n%s\nvs\n%s", a, b)
	}
	if strings.Join(warns, "\n") != strings.Join(warns2, "\n") {
		t.Errorf("warnings depend on input order: %v vs %v", warns, warns2)
	}
	if len(warns) != 2 || !strings.Contains(warns[0]+warns[1], "shadowed by ingress default/b-same") ||
		!strings.Contains(warns[0]+warns[1], "shadowed by ingress default/zz-older") {
		t.Errorf("want two shadowing warnings, got %q", warns)
	}
}

func routeKeys(rs []Route) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.Rule() + " -> " + r.Service() + "\n")
	}
	return b.String()
}

func TestDefaultBackend(t *testing.T) {
	only := mkIngress("default", "only-default")
	db := svcBackend("fallback", 8080)
	only.Spec.DefaultBackend = &db
	second := mkIngress("other", "second-default", mkRule("app.example", mkPath("/app", prefix, "app")))
	db2 := svcBackend("fallback2", 80)
	second.Spec.DefaultBackend = &db2

	table, warns := Build([]Ingress{second, only}, "")
	if len(warns) != 0 {
		t.Errorf("warnings = %q", warns)
	}
	for _, c := range []struct{ host, path, svc string }{
		{"app.example", "/app/x", "app"},
		{"app.example", "/nope", "fallback2"}, // host matched, no path: its Ingress's defaultBackend
		{"other.example", "/app", "fallback"}, // no rule for the host: the catch-all
		{"", "/", "fallback"},
	} {
		got, ok := table.Match(c.host, c.path)
		if !ok || got.ServiceName != c.svc {
			t.Errorf("Match(%q, %q) = %+v, %v; want %s", c.host, c.path, got, ok, c.svc)
		}
	}
	got, _ := table.Match("x", "/")
	if !got.Default || got.ServiceNamespace != "default" || got.ServicePort.Number != 8080 || got.Rule() != "default/only-default defaultBackend" {
		t.Errorf("default route = %+v (%s)", got, got.Rule())
	}
	got, _ = table.Match("app.example", "/nope")
	if !got.Default || got.ServiceNamespace != "other" || got.Rule() != "other/second-default defaultBackend host=app.example" {
		t.Errorf("host default route = %+v (%s)", got, got.Rule())
	}
}

func TestClassFiltering(t *testing.T) {
	cls := func(s string) *string { return &s }
	mine := mkIngress("default", "mine", mkRule("mine.example", mkPath("/", prefix, "mine")))
	mine.Spec.IngressClassName = cls("netlab")
	noClass := mkIngress("default", "no-class", mkRule("none.example", mkPath("/", prefix, "none")))
	nginx := mkIngress("default", "nginx", mkRule("nginx.example", mkPath("/", prefix, "nginx")))
	nginx.Spec.IngressClassName = cls("nginx")
	legacy := mkIngress("default", "legacy", mkRule("legacy.example", mkPath("/", prefix, "legacy")))
	legacy.Annotations = map[string]string{"kubernetes.io/ingress.class": "traefik"}
	legacyMine := mkIngress("default", "legacy-mine", mkRule("lm.example", mkPath("/", prefix, "lm")))
	legacyMine.Annotations = map[string]string{"kubernetes.io/ingress.class": "netlab"}

	table, warns := Build([]Ingress{mine, noClass, nginx, legacy, legacyMine}, "")
	for host, want := range map[string]bool{
		"mine.example": true, "none.example": true, "lm.example": true,
		"nginx.example": false, "legacy.example": false,
	} {
		if _, ok := table.Match(host, "/"); ok != want {
			t.Errorf("host %s served = %v, want %v", host, ok, want)
		}
	}
	joined := strings.Join(warns, "\n")
	if len(warns) != 2 || !strings.Contains(joined, `ingress default/nginx: class "nginx" is not this lab's class "netlab"; ignored`) ||
		!strings.Contains(joined, `ingress default/legacy: class "traefik"`) {
		t.Errorf("warnings = %q", warns)
	}

	// Another lab class name serves only its own.
	table, _ = Build([]Ingress{mine, nginx}, "nginx")
	if _, ok := table.Match("mine.example", "/"); ok {
		t.Error("class nginx served an Ingress of class netlab")
	}
	if _, ok := table.Match("nginx.example", "/"); !ok {
		t.Error("class nginx did not serve its Ingress")
	}
}

func TestImplementationSpecificIsPrefix(t *testing.T) {
	noType := HTTPIngressPath{Path: "", Backend: svcBackend("catchall", 80)}
	table, warns := Build([]Ingress{
		mkIngress("default", "is", mkRule("a.example", mkPath("/foo", implSpec, "foo"), noType)),
	}, "")
	if len(warns) != 0 {
		t.Fatal(warns)
	}
	for _, c := range []struct{ path, svc string }{
		{"/foo", "foo"}, {"/foo/", "foo"}, {"/foo/bar", "foo"}, {"/foobar", "catchall"}, {"/", "catchall"},
	} {
		got, ok := table.Match("a.example", c.path)
		if !ok || got.ServiceName != c.svc {
			t.Errorf("Match(%s) = %+v, %v; want %s", c.path, got, ok, c.svc)
		}
	}
}

func TestBackendPortByName(t *testing.T) {
	pt := prefix
	byName := HTTPIngressPath{Path: "/", PathType: &pt, Backend: IngressBackend{
		Service: &IngressServiceBackend{Name: "web", Port: ServiceBackendPort{Name: "http"}},
	}}
	table, warns := Build([]Ingress{mkIngress("shop", "i", mkRule("", byName))}, "")
	if len(warns) != 0 {
		t.Fatal(warns)
	}
	got, ok := table.Match("x", "/")
	if !ok || got.ServicePort.Name != "http" || got.ServiceNamespace != "shop" || got.Service() != "shop/web:http" {
		t.Errorf("got %+v (%s)", got, got.Service())
	}
}

func TestInvalidRulesSkippedWithWarnings(t *testing.T) {
	pt := prefix
	noPort := HTTPIngressPath{Path: "/np", PathType: &pt, Backend: IngressBackend{
		Service: &IngressServiceBackend{Name: "web"},
	}}
	resource := HTTPIngressPath{Path: "/res", PathType: &pt, Backend: IngressBackend{}}
	table, warns := Build([]Ingress{mkIngress("default", "bad",
		mkRule("*", mkPath("/", prefix, "a")),
		mkRule("a.*.com", mkPath("/", prefix, "a")),
		mkRule("host:80", mkPath("/", prefix, "a")),
		mkRule("ok.example", mkPath("relative", prefix, "a"), mkPath("/e", "Regex", "a"), noPort, resource,
			mkPath("/good", exact, "good")),
	)}, "")
	if len(warns) != 7 {
		t.Errorf("want 7 warnings, got %d: %q", len(warns), warns)
	}
	if got, ok := table.Match("ok.example", "/good"); !ok || got.ServiceName != "good" {
		t.Errorf("valid rule lost: %+v %v", got, ok)
	}
	if n := len(table.Routes()); n != 1 {
		t.Errorf("want 1 route, got %d", n)
	}
}

func TestRequestPathCleaned(t *testing.T) {
	table, _ := Build([]Ingress{mkIngress("default", "i", mkRule("",
		mkPath("/public", prefix, "public"), mkPath("/admin", exact, "admin")))}, "")
	for _, c := range []struct{ path, svc string }{
		{"/public/../admin", "admin"},
		{"//admin", "admin"},
		{"/public/./x", "public"},
		{"/public//x/", "public"},
	} {
		got, ok := table.Match("", c.path)
		if !ok || got.ServiceName != c.svc {
			t.Errorf("Match(%q) = %+v, %v; want %s", c.path, got, ok, c.svc)
		}
	}
}

func TestTableTLSAndHosts(t *testing.T) {
	ing := mkIngress("shop", "tls", mkRule("a.example", mkPath("/", prefix, "a")), mkRule("*.w.example", mkPath("/", prefix, "w")))
	ing.Spec.TLS = []IngressTLS{{Hosts: []string{"a.example"}, SecretName: "a-tls"}, {}}
	table, _ := Build([]Ingress{ing}, "")
	tl := table.TLS()
	if len(tl) != 2 || tl[0].Namespace != "shop" || tl[0].SecretName != "a-tls" || tl[0].Ingress != "shop/tls" {
		t.Errorf("TLS() = %+v", tl)
	}
	if got := strings.Join(table.Hosts(), ","); got != "*.w.example,a.example" {
		t.Errorf("Hosts() = %s", got)
	}
}

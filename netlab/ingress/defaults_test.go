package ingress

import (
	"strings"
	"testing"
)

// withDefault gives an Ingress a spec.defaultBackend.
func withDefault(ing Ingress, svc string) Ingress {
	b := svcBackend(svc, 80)
	ing.Spec.DefaultBackend = &b
	return ing
}

// TestDefaultBackendsAsIngressNginx: the catch-all comes from the oldest Ingress without
// rules, whatever the names; an Ingress's own defaultBackend answers only the hosts it
// defined first; the review's lab (dbe/default-backend beside app/app-ing) answers as
// ingress-nginx does.
func TestDefaultBackendsAsIngressNginx(t *testing.T) {
	dbe := withDefault(mkIngress("dbe", "default-backend"), "echo-service")
	app := withDefault(mkIngress("app", "app-ing",
		mkRule("a.example", mkPath("/api", prefix, "api")),
		mkRule("", mkPath("/anyhost", prefix, "anyhost"))), "svc-adef")
	late := withDefault(mkIngress("aaa", "late-ing", mkRule("a.example", mkPath("/late", prefix, "late"))), "late-def")
	other := withDefault(mkIngress("zzz", "z-catch"), "z-def") // a second catch-all, created last
	order := map[string]int{"dbe/default-backend": 0, "app/app-ing": 0, "aaa/late-ing": 1, "zzz/z-catch": 2}

	ings := []Ingress{late, other, app, dbe}
	table, warns := BuildWith(ings, BuildOptions{Order: order})
	for _, c := range []struct{ host, path, svc string }{
		{"my-host", "/", "echo-service"},
		{"my-host", "/sub-path", "echo-service"},
		{"", "/resource", "echo-service"},
		{"some-host", "/anyhost/x", "anyhost"}, // the rules without host, before the catch-all
		{"a.example", "/api/v1", "api"},
		{"a.example", "/late", "late"},        // a path nobody else has: merged
		{"a.example", "/nothing", "svc-adef"}, // app-ing defined a.example first
	} {
		got, ok := table.Match(c.host, c.path)
		if !ok || got.ServiceName != c.svc {
			t.Errorf("Match(%q, %q) = %s (%v); want %s", c.host, c.path, got.Rule(), ok, c.svc)
		}
	}
	joined := strings.Join(warns, "\n")
	for _, w := range []string{
		`ingress aaa/late-ing: defaultBackend does not serve host "a.example": ingress app/app-ing defined it first`,
		`ingress zzz/z-catch: defaultBackend shadowed by the one of ingress dbe/default-backend`,
	} {
		if !strings.Contains(joined, w) {
			t.Errorf("warnings lack %q: %q", w, warns)
		}
	}
	if len(warns) != 2 {
		t.Errorf("want 2 warnings, got %q", warns)
	}

	// Without an Ingress without rules, the oldest defaultBackend catches everything.
	table, _ = BuildWith([]Ingress{late, app}, BuildOptions{Order: order})
	for _, c := range []struct{ host, path, svc string }{
		{"unknown.example", "/", "svc-adef"},
		{"a.example", "/nothing", "svc-adef"},
	} {
		if got, ok := table.Match(c.host, c.path); !ok || got.ServiceName != c.svc {
			t.Errorf("no catch-all Ingress: Match(%q, %q) = %s (%v); want %s", c.host, c.path, got.Rule(), ok, c.svc)
		}
	}
	// A host whose first Ingress has no defaultBackend falls to the catch-all.
	plain := mkIngress("app", "plain", mkRule("b.example", mkPath("/x", exact, "x")))
	table, _ = BuildWith([]Ingress{plain, dbe}, BuildOptions{})
	if got, ok := table.Match("b.example", "/y"); !ok || got.ServiceName != "echo-service" {
		t.Errorf("b.example/y = %s (%v); want the catch-all", got.Rule(), ok)
	}
}

// TestCreationOrderBeatsNames: an Ingress created later (a higher Order) never takes a
// host's path or the catch-all from an older one, whatever their names; at equal order
// namespace/name decides.
func TestCreationOrderBeatsNames(t *testing.T) {
	old := withDefault(mkIngress("zz", "old", mkRule("a.example", mkPath("/api", prefix, "old-api"))), "old-def")
	catch := withDefault(mkIngress("zz", "catch"), "catch")
	newer := withDefault(mkIngress("aa", "new", mkRule("a.example", mkPath("/api", prefix, "new-api"))), "new-def")
	newCatch := withDefault(mkIngress("aa", "new-catch"), "new-catch")
	ings := []Ingress{newer, newCatch, old, catch}

	table, warns := BuildWith(ings, BuildOptions{Order: map[string]int{"aa/new": 3, "aa/new-catch": 3}})
	for _, c := range []struct{ host, path, svc string }{
		{"a.example", "/api", "old-api"},
		{"a.example", "/other", "old-def"},
		{"x.example", "/", "catch"},
	} {
		if got, ok := table.Match(c.host, c.path); !ok || got.ServiceName != c.svc {
			t.Errorf("Match(%q, %q) = %s (%v); want %s", c.host, c.path, got.Rule(), ok, c.svc)
		}
	}
	if j := strings.Join(warns, "\n"); !strings.Contains(j, `path "/api" (Prefix) shadowed by ingress zz/old`) ||
		!strings.Contains(j, "aa/new-catch: defaultBackend shadowed by the one of ingress zz/catch") {
		t.Errorf("warnings = %q", warns)
	}
	// Same order: names decide (aa before zz).
	table, _ = BuildWith(ings, BuildOptions{})
	if got, _ := table.Match("a.example", "/api"); got.ServiceName != "new-api" {
		t.Errorf("equal order: got %s, want aa/new's rule", got.Rule())
	}
}

// TestClassOptions: extra classes of the lab's controller are served, and Ingresses
// without class are left alone when the default IngressClass is another controller's.
func TestClassOptions(t *testing.T) {
	cls := func(s string) *string { return &s }
	pub := mkIngress("default", "pub", mkRule("pub.example", mkPath("/", prefix, "pub")))
	pub.Spec.IngressClassName = cls("public")
	none := mkIngress("default", "none", mkRule("none.example", mkPath("/", prefix, "none")))
	nginx := mkIngress("default", "nginx", mkRule("nginx.example", mkPath("/", prefix, "nginx")))
	nginx.Spec.IngressClassName = cls("nginx")
	ings := []Ingress{pub, none, nginx}

	table, warns := BuildWith(ings, BuildOptions{Classes: []string{"public"}, IgnoreWithoutClass: true})
	for host, want := range map[string]bool{"pub.example": true, "none.example": false, "nginx.example": false} {
		if _, ok := table.Match(host, "/"); ok != want {
			t.Errorf("%s served = %v, want %v", host, ok, want)
		}
	}
	if j := strings.Join(warns, "\n"); len(warns) != 2 || !strings.Contains(j, "ingress default/none: names no class") {
		t.Errorf("warnings = %q", warns)
	}
	table, _ = BuildWith(ings, BuildOptions{})
	for host, want := range map[string]bool{"pub.example": false, "none.example": true} {
		if _, ok := table.Match(host, "/"); ok != want {
			t.Errorf("defaults: %s served = %v, want %v", host, ok, want)
		}
	}
}

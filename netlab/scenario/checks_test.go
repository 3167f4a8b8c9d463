package scenario

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// checksProblems validates the test lab (nodes node-1, node-2; the default client; web-1,
// web-2 of Deployment web behind Service web) with spec lines added, and returns every
// problem as a line.
func checksProblems(t *testing.T, spec string) []string {
	t.Helper()
	s, err := Parse("lab.yaml", []byte(lab(spec)+"---\n"+webDep+"---\n"+webSvc))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	err = Validate(s)
	if err == nil {
		return nil
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("not Problems: %v", err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestChecksValid(t *testing.T) {
	spec := `  checks:
  - {name: web, url: "http://203.0.113.100/", host: app.example, expect: {status: 200, servedBy: [web]}}
  - {from: web-1, url: "http://web/", expect: {servedBy: [web-1, web-2], clientIP: 10.244.1.2}}
  - {from: node-1, url: "tcp://10.96.0.11:80", expect: {clientIP: client}}
  - {url: "udp://203.0.113.101:53", requests: 3}
  - {url: "http://172.18.0.12:30080/", expect: {fail: true}, before: ["node fail node-2"]}
  - {url: "https://app.example/", expect: {sameBackend: true}, before: ["pod kill web-1", "netlab scale deployment/web --replicas 3", "rollout restart deployment/web"]}
  - {url: "http://app.example/", expect: {servedBy: [web-4]}, before: ["scale deployment/web --replicas=1", "pod start web-1", "node recover node-1"]}
`
	if probs := checksProblems(t, spec); probs != nil {
		t.Fatalf("valid checks refused:\n%s", strings.Join(probs, "\n"))
	}
}

func TestChecksProblems(t *testing.T) {
	spec := `  checks:
  - {name: a, from: nobody, url: "ftp://x/"}
  - {name: a, url: "http://203.0.113.100/", host: "bad host", expect: {status: 700, servedBy: [api, web-0, web-1x], clientIP: nowhere}}
  - {url: "tcp://app.example:80"}
  - {url: "tcp://10.96.0.11", requests: 1000}
  - {url: "http://app.example/", expect: {fail: true, status: 200}}
  - {url: "udp://10.96.0.11:53", expect: {status: 200}}
  - {url: "http://app.example/", before: ["pod kill api-1", "node fail node-9", "scale deployment/api --replicas 2", "scale deployment/web --replicas x", "reboot node-1"]}
  - {url: "http://app.example:99999/"}
  - {}
`
	got := checksProblems(t, spec)
	want := []string{
		`lab.yaml: Lab t: spec.checks[0].from: "nobody" is no client, node or pod of this lab`,
		`lab.yaml: Lab t: spec.checks[0].url: must be http://, https://, tcp:// or udp://, got "ftp://x/"`,
		`lab.yaml: Lab t: spec.checks[1].name: "a" is already the name of spec.checks[0]`,
		`lab.yaml: Lab t: spec.checks[1].host: must be a host name or address (with an optional :port), got "bad host"`,
		`lab.yaml: Lab t: spec.checks[1].expect.status: must be an HTTP status (100-599), got 700`,
		`lab.yaml: Lab t: spec.checks[1].expect.servedBy[0]: "api" is no Deployment or pod of this lab`,
		`lab.yaml: Lab t: spec.checks[1].expect.servedBy[1]: "web-0" is no Deployment or pod of this lab`,
		`lab.yaml: Lab t: spec.checks[1].expect.servedBy[2]: "web-1x" is no Deployment or pod of this lab`,
		`lab.yaml: Lab t: spec.checks[1].expect.clientIP: must be an IPv4 address or "client" (the sender's own address), got "nowhere"`,
		`lab.yaml: Lab t: spec.checks[2].url: tcp:// needs an IPv4 address and a port (tcp://IP:PORT), got "tcp://app.example:80"`,
		`lab.yaml: Lab t: spec.checks[3].url: tcp:// needs an IPv4 address and a port (tcp://IP:PORT), got "tcp://10.96.0.11"`,
		`lab.yaml: Lab t: spec.checks[3].requests: must be between 1 and 100, got 1000`,
		`lab.yaml: Lab t: spec.checks[4].expect.fail: a request that must fail has no status, servedBy, clientIP or sameBackend to check`,
		`lab.yaml: Lab t: spec.checks[5].expect.status: an HTTP status needs an http:// or https:// url, got "udp://10.96.0.11:53"`,
		`lab.yaml: Lab t: spec.checks[6].before[0]: "api-1" is no pod of this lab`,
		`lab.yaml: Lab t: spec.checks[6].before[1]: "node-9" is no node of this lab`,
		`lab.yaml: Lab t: spec.checks[6].before[2]: "api" is no Deployment of this lab's scenario`,
		`lab.yaml: Lab t: spec.checks[6].before[3]: "scale deployment/web --replicas x": --replicas must be a whole number, got "x"`,
		`lab.yaml: Lab t: spec.checks[6].before[4]: "reboot node-1": want "pod kill POD", "pod start POD", "node fail NODE", "node recover NODE", "scale deployment/NAME --replicas N" or "rollout restart deployment/NAME"`,
		`lab.yaml: Lab t: spec.checks[7].url: port must be between 1 and 65535, got "99999"`,
		`lab.yaml: Lab t: spec.checks[8].url: required`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// An unknown field of a check is an error, as anywhere in the Lab object.
func TestChecksUnknownField(t *testing.T) {
	_, err := Parse("lab.yaml", []byte(lab("  checks:\n  - {url: \"http://app.example/\", expect: {servedby: [web]}}\n")))
	if err == nil || !strings.Contains(err.Error(), "lab.yaml: Lab t: spec.checks[0].expect.servedby: unknown field") {
		t.Fatalf("want an unknown-field error naming the file, object and field, got %v", err)
	}
}

func TestCheckDefaults(t *testing.T) {
	for _, tc := range []struct {
		c        Check
		name     string
		requests int
	}{
		{Check{URL: "http://app.example/"}, "client http://app.example/", 1},
		{Check{Name: "x", From: "web-1", URL: "http://web/", Expect: CheckExpect{ServedBy: []string{"web"}}}, "x", DefaultCheckRequests},
		{Check{From: "bob", URL: "udp://1.2.3.4:53", Expect: CheckExpect{SameBackend: true}, Requests: 3}, "bob udp://1.2.3.4:53", 3},
	} {
		if got := tc.c.CheckName("client"); got != tc.name {
			t.Errorf("%+v: name %q, want %q", tc.c, got, tc.name)
		}
		if got := tc.c.RequestCount(); got != tc.requests {
			t.Errorf("%+v: %d requests, want %d", tc.c, got, tc.requests)
		}
	}
}

func TestParseDrill(t *testing.T) {
	for in, want := range map[string]Drill{
		"pod kill web-1":                     {Verb: "pod kill", Target: "web-1"},
		"netlab node fail node-2":            {Verb: "node fail", Target: "node-2"},
		"scale deployment/web --replicas 0":  {Verb: "scale", Target: "web", Replicas: 0},
		"scale deployments/web --replicas=4": {Verb: "scale", Target: "web", Replicas: 4},
		"rollout restart deployment/api":     {Verb: "rollout restart", Target: "api"},
		"  node   recover   node-1 ":         {Verb: "node recover", Target: "node-1"},
	} {
		got, err := ParseDrill(in)
		if err != nil || got != want {
			t.Errorf("ParseDrill(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "pod kill", "pod stop web-1", "scale web --replicas 2", "scale deployment/web", "rollout undo deployment/web", "node fail a b"} {
		if d, err := ParseDrill(in); err == nil {
			t.Errorf("ParseDrill(%q) = %+v, want an error", in, d)
		}
	}
}

// scenarios/basic.yaml is the embedded default lab, word for word.
func TestBasicIsTheDefault(t *testing.T) {
	b, err := os.ReadFile("../../scenarios/basic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, DefaultYAML()) {
		t.Fatal("scenarios/basic.yaml differs from netlab/scenario/default.yaml: keep them the same file")
	}
}

// Every lesson in scenarios/ opens with comments saying what it teaches and carries
// checks that prove it.
func TestScenariosAreLessons(t *testing.T) {
	files, _ := filepath.Glob("../../scenarios/*.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("# ")) {
			t.Errorf("%s: does not open with a comment saying what it teaches", f)
		}
		s, err := Parse(f, b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(s.Lab.Spec.Checks) == 0 {
			t.Errorf("%s: no spec.checks", f)
		}
	}
}

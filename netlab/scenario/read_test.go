package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadFileRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for path, want := range map[string]string{
		"/dev/null": "not a regular file (a character device)",
		"/dev/zero": "not a regular file (a character device)",
		fifo:        "not a regular file (a FIFO)",
		dir:         "not a regular file (a directory)",
		big:         "more than the limit of 8388608 (8 MiB)",
	} {
		// Load would hang on the FIFO or run out of memory on /dev/zero if it read them.
		_, err := Load([]string{path})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("Load(%s): %v, want an error naming it with %q", path, err, want)
		}
	}
}

func TestLoadReportsEveryBadFileAtOnce(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	comments := filepath.Join(dir, "comments.yaml")
	os.WriteFile(empty, nil, 0o600)
	os.WriteFile(comments, []byte("# nothing\n---\n# still nothing\n"), 0o600)
	_, err := Load([]string{empty, "/dev/null", comments})
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 2 {
		t.Fatalf("Load: %v, want the two empty files among the problems", err)
	}
	for _, p := range ps {
		if !strings.Contains(p.Msg, "no objects") {
			t.Errorf("problem %v", p)
		}
	}
	if !strings.Contains(err.Error(), "/dev/null") {
		t.Errorf("the device is not named: %v", err)
	}
}

const labelTemplate = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  %s
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: netlab/echo, ports: [{containerPort: 8080}]}]
`

func TestLabelsAndAnnotationsFollowKubernetesLimits(t *testing.T) {
	for name, tc := range map[string]struct{ meta, want string }{
		"annotations over 256 KiB": {"annotations: {big: " + strings.Repeat("x", 300<<10) + "}", "may not be more than 262144 bytes"},
		"label value of 64":        {"labels: {app: " + strings.Repeat("a", 64) + "}", "must be no more than 63"},
		"label key with a space":   {`labels: {"bad key": x}`, "metadata.labels"},
		"annotation key invalid":   {`annotations: {"-x-": "v"}`, "metadata.annotations"},
	} {
		_, err := Parse("t.yaml", []byte(strings.Replace(labelTemplate, "%s", tc.meta, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Deployment default/web") {
			t.Errorf("%s: %.400v, want a problem of deployment/web with %q", name, err, tc.want)
		}
		if err != nil && len(err.Error()) > 2000 {
			t.Errorf("%s: the error echoes the input (%d bytes)", name, len(err.Error()))
		}
	}
	if _, err := Parse("t.yaml", []byte(strings.Replace(labelTemplate, "%s", "labels: {app.kubernetes.io/name: web}", 1))); err != nil {
		t.Errorf("a valid prefixed label: %v", err)
	}
}

func TestDeploymentRestartPolicyIsAlways(t *testing.T) {
	tmpl := strings.Replace(labelTemplate, "containers: [", "restartPolicy: %s\n      containers: [", 1)
	tmpl = strings.Replace(tmpl, "%s\nspec:", "\nspec:", 1)
	for policy, ok := range map[string]bool{"Always": true, "OnFailure": false, "Never": false} {
		s, err := Parse("t.yaml", []byte(strings.Replace(tmpl, "%s", policy, 1)))
		if err == nil {
			err = Validate(s)
		}
		if ok != (err == nil) || (!ok && !strings.Contains(err.Error(), "spec.template.spec.restartPolicy")) {
			t.Errorf("restartPolicy %s: %v", policy, err)
		}
	}
}

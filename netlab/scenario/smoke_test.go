package scenario

import "testing"

func TestLoadDefault(t *testing.T) {
	s, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Deployments) != 2 || len(s.Services) != 2 || len(s.Ingresses) != 1 || s.Lab.Metadata.Name != "demo" {
		t.Fatalf("default scenario: %+v", s)
	}
	if len(s.Warnings) != 0 {
		t.Fatalf("warnings: %v", s.Warnings)
	}
}

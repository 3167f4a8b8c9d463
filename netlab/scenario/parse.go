package scenario

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultFile is the Source.File of objects from the embedded default scenario.
const DefaultFile = "<default>"

// DefaultYAML returns the embedded default scenario's text.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Load reads scenario files (or the embedded default when paths is empty), merges them
// into one scenario and applies defaults. It does not validate: call Validate.
func Load(paths []string) (*Scenario, error) {
	s := &Scenario{}
	if len(paths) == 0 {
		if err := s.parse(DefaultFile, defaultYAML); err != nil {
			return nil, err
		}
		s.ApplyDefaults()
		return s, nil
	}
	var probs Problems
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read scenario: %w", err)
		}
		if err := s.parse(p, data); err != nil {
			var ps Problems
			if errors.As(err, &ps) {
				probs = append(probs, ps...)
				continue
			}
			return nil, err
		}
	}
	if len(probs) > 0 {
		return nil, probs
	}
	s.ApplyDefaults()
	return s, nil
}

// Parse decodes one file's bytes into a new scenario with defaults applied.
func Parse(file string, data []byte) (*Scenario, error) {
	s := &Scenario{}
	if err := s.parse(file, data); err != nil {
		return nil, err
	}
	s.ApplyDefaults()
	return s, nil
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// parse adds the documents of one file to s. Decoding problems of all documents are
// collected and returned together as Problems.
func (s *Scenario) parse(file string, data []byte) error {
	var probs Problems
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			probs = append(probs, Problem{File: file, Object: fmt.Sprintf("document %d", doc), Msg: err.Error()})
			break
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			doc--
			continue
		}
		src := Source{File: file, Doc: doc}
		probs = append(probs, s.parseDoc(src, raw)...)
	}
	if len(probs) > 0 {
		return probs
	}
	return nil
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' || bytes.Equal(t, []byte("---")) {
			continue
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out
}

func (s *Scenario) parseDoc(src Source, raw []byte) Problems {
	var tm typeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return Problems{{File: src.File, Object: fmt.Sprintf("document %d", src.Doc), Msg: "not a YAML object: " + err.Error()}}
	}
	ns := tm.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	obj := fmt.Sprintf("%s %s/%s", tm.Kind, ns, tm.Metadata.Name)
	bad := func(msg string) Problems {
		return Problems{{File: src.File, Object: obj, Msg: msg}}
	}
	want := map[string]string{
		"Lab": APIVersion, "Deployment": "apps/v1", "Service": "v1", "Secret": "v1",
		"Ingress": "networking.k8s.io/v1",
	}
	av, known := want[tm.Kind]
	switch {
	case tm.Kind == "":
		return Problems{{File: src.File, Object: fmt.Sprintf("document %d", src.Doc), Msg: "missing kind"}}
	case !known:
		return bad(fmt.Sprintf("unknown kind %q (the lab reads Lab, Deployment, Service, Ingress, Secret)", tm.Kind))
	case tm.APIVersion != av:
		return bad(fmt.Sprintf("apiVersion %q is not supported for kind %s (want %s)", tm.APIVersion, tm.Kind, av))
	}
	if tm.Kind == KindLab {
		if s.LabSource.File != "" {
			return Problems{{File: src.File, Object: "Lab " + tm.Metadata.Name,
				Msg: fmt.Sprintf("a second Lab object (the first is in %s, document %d)", s.LabSource.File, s.LabSource.Doc)}}
		}
		var lab Lab
		if err := yaml.UnmarshalStrict(raw, &lab); err != nil {
			return Problems{{File: src.File, Object: "Lab " + tm.Metadata.Name, Msg: err.Error()}}
		}
		s.Lab, s.LabSource = lab, src
		return nil
	}
	// Kubernetes objects: unknown fields are warnings, not errors.
	var target any
	switch tm.Kind {
	case "Deployment":
		s.Deployments = append(s.Deployments, Deployment{Source: src})
		target = &s.Deployments[len(s.Deployments)-1].Deployment
	case "Service":
		s.Services = append(s.Services, Service{Source: src})
		target = &s.Services[len(s.Services)-1].Service
	case "Ingress":
		s.Ingresses = append(s.Ingresses, Ingress{Source: src})
		target = &s.Ingresses[len(s.Ingresses)-1].Ingress
	case "Secret":
		s.Secrets = append(s.Secrets, Secret{Source: src})
		target = &s.Secrets[len(s.Secrets)-1].Secret
	}
	if err := yaml.Unmarshal(raw, target); err != nil {
		s.dropLast(tm.Kind)
		return bad(err.Error())
	}
	if err := yaml.UnmarshalStrict(raw, newOf(tm.Kind)); err != nil {
		s.Warnings = append(s.Warnings, Problem{File: src.File, Object: obj, Msg: "ignored: " + err.Error()})
	}
	return nil
}

func newOf(kind string) any {
	switch kind {
	case "Deployment":
		return &Deployment{}
	case "Service":
		return &Service{}
	case "Ingress":
		return &Ingress{}
	default:
		return &Secret{}
	}
}

func (s *Scenario) dropLast(kind string) {
	switch kind {
	case "Deployment":
		s.Deployments = s.Deployments[:len(s.Deployments)-1]
	case "Service":
		s.Services = s.Services[:len(s.Services)-1]
	case "Ingress":
		s.Ingresses = s.Ingresses[:len(s.Ingresses)-1]
	case "Secret":
		s.Secrets = s.Secrets[:len(s.Secrets)-1]
	}
}

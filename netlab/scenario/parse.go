package scenario

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
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
	var readErrs []error
	for _, p := range paths {
		data, err := ReadFile(p)
		if err != nil {
			readErrs = append(readErrs, err)
			continue
		}
		name := p
		if p == Stdin {
			name = StdinName
		}
		if err := s.parse(name, data); err != nil {
			var ps Problems
			if errors.As(err, &ps) {
				probs = append(probs, ps...)
				continue
			}
			return nil, err
		}
	}
	if len(readErrs) > 0 {
		if len(probs) > 0 {
			readErrs = append(readErrs, probs)
		}
		return nil, errors.Join(readErrs...)
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
	if !slices.Contains(s.Files, file) {
		s.Files = append(s.Files, file)
	}
	var probs Problems
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	objects := 0
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			probs = append(probs, Problem{File: file, Doc: doc, Object: fmt.Sprintf("document %d", doc), Msg: err.Error()})
			break
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			doc--
			continue
		}
		src := Source{File: file, Doc: doc}
		objects++
		probs = append(probs, s.parseDoc(src, raw)...)
	}
	if objects == 0 && len(probs) == 0 {
		probs = Problems{{File: file, Object: "file", Msg: "no objects (empty, or only comments): nothing to build; " +
			"leave out -f for the default lab"}}
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
	docObj := fmt.Sprintf("document %d", src.Doc)
	js, err := yaml.YAMLToJSONStrict(raw) // duplicate keys are errors, as for kubectl
	if err != nil {
		// Name the object when the document is readable at all.
		obj := docObj
		var tm typeMeta
		if lax, lerr := yaml.YAMLToJSON(raw); lerr == nil && kjson.UnmarshalCaseSensitivePreserveInts(lax, &tm) == nil && tm.Kind != "" {
			obj = objectName(tm)
		}
		msg := strings.Join(strings.Fields(err.Error()), " ")
		return Problems{{File: src.File, Doc: src.Doc, Object: obj, Msg: fmt.Sprintf("not valid YAML (document %d): %s", src.Doc, msg)}}
	}
	var tm typeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return Problems{{File: src.File, Doc: src.Doc, Object: docObj, Msg: "not a Kubernetes object: " + err.Error()}}
	}
	obj := objectName(tm)
	bad := func(msg string) Problems {
		return Problems{{File: src.File, Doc: src.Doc, Object: obj, Msg: msg}}
	}
	var om objectMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &om); err == nil {
		if msgs := metaProblems(om); len(msgs) > 0 {
			var ps Problems
			for _, m := range msgs {
				ps = append(ps, Problem{File: src.File, Doc: src.Doc, Object: obj, Msg: m})
			}
			return ps
		}
	}
	want := map[string]string{
		"Lab": APIVersion, "Deployment": "apps/v1", "Service": "v1", "Secret": "v1",
		"Ingress": "networking.k8s.io/v1", "IngressClass": "networking.k8s.io/v1",
	}
	av, known := want[tm.Kind]
	switch {
	case tm.Kind == "":
		return Problems{{File: src.File, Doc: src.Doc, Object: docObj, Msg: "missing kind"}}
	case !known:
		return bad(fmt.Sprintf("unknown kind %q (the lab reads Lab, Deployment, Service, Ingress, IngressClass, Secret)", tm.Kind))
	case tm.APIVersion != av:
		return bad(fmt.Sprintf("apiVersion %q is not supported for kind %s (want %s)", tm.APIVersion, tm.Kind, av))
	}
	if tm.Kind == KindLab {
		labObj := obj
		if s.LabSource.File != "" {
			return Problems{{File: src.File, Doc: src.Doc, Object: labObj,
				Msg: fmt.Sprintf("a second Lab object (the first is in %s, document %d)", s.LabSource.File, s.LabSource.Doc)}}
		}
		// The Lab is netlab's own API: unknown and duplicate fields are errors.
		var lab Lab
		strict, err := kjson.UnmarshalStrict(js, &lab)
		if err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				return Problems{{File: src.File, Doc: src.Doc, Object: labObj, Field: fe.Field, Msg: fe.Msg}}
			}
			return Problems{{File: src.File, Doc: src.Doc, Object: labObj, Msg: err.Error()}}
		}
		if len(strict) > 0 {
			var probs Problems
			for _, e := range strict {
				field, msg := strictField(e)
				probs = append(probs, Problem{File: src.File, Doc: src.Doc, Object: labObj, Field: field, Msg: msg})
			}
			return probs
		}
		s.Lab, s.LabSource = lab, src
		return nil
	}
	// Kubernetes objects: decoded case-sensitively like the API server; unknown and
	// duplicate fields are warnings, not errors.
	var target any
	switch tm.Kind {
	case "Deployment":
		target = &appsv1.Deployment{}
	case "Service":
		target = &corev1.Service{}
	case "Ingress":
		target = &netv1.Ingress{}
	case "IngressClass":
		target = &netv1.IngressClass{}
	default:
		target = &corev1.Secret{}
	}
	strict, err := kjson.UnmarshalStrict(js, target)
	if err != nil {
		return bad(err.Error())
	}
	for _, e := range strict {
		field, msg := strictField(e)
		s.addWarning(Problem{File: src.File, Doc: src.Doc, Object: obj, Field: field, Msg: msg + ", ignored"})
	}
	switch o := target.(type) {
	case *appsv1.Deployment:
		s.Deployments = append(s.Deployments, Deployment{Deployment: *o, Source: src})
	case *corev1.Service:
		s.Services = append(s.Services, Service{Service: *o, Source: src})
	case *netv1.Ingress:
		s.Ingresses = append(s.Ingresses, Ingress{Ingress: *o, Source: src})
	case *corev1.Secret:
		s.Secrets = append(s.Secrets, Secret{Secret: *o, Source: src})
	case *netv1.IngressClass:
		s.IngressClasses = append(s.IngressClasses, IngressClass{IngressClass: *o, Source: src})
	}
	return nil
}

// objectName names an object in Problems: "Lab demo", "Service default/web".
func objectName(tm typeMeta) string {
	if tm.Kind == KindLab || tm.Kind == "IngressClass" { // not namespaced
		return tm.Kind + " " + tm.Metadata.Name
	}
	ns := tm.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	return fmt.Sprintf("%s %s/%s", tm.Kind, ns, tm.Metadata.Name)
}

// strictField turns a strict-decoding error of sigs.k8s.io/json into a field path and a
// message ("unknown field" or "duplicate field").
func strictField(err error) (field, msg string) {
	var fe kjson.FieldError
	if errors.As(err, &fe) {
		msg = err.Error()
		if i := strings.IndexByte(msg, '"'); i > 0 {
			msg = strings.TrimSpace(msg[:i])
		}
		return fe.FieldPath(), msg
	}
	return "", err.Error()
}

// fieldError is a decoding error at a known field of the Lab object.
type fieldError struct{ Field, Msg string }

func (e *fieldError) Error() string { return e.Field + ": " + e.Msg }

// addWarning appends w unless an equal warning is already there.
func (s *Scenario) addWarning(w Problem) {
	for _, x := range s.Warnings {
		if x == w {
			return
		}
	}
	s.Warnings = append(s.Warnings, w)
}

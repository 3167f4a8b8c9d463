package ingress

import "time"

// The Kubernetes objects the ingress reads, as plain Go types: the fields of
// networking.k8s.io/v1 Ingress and of a kubernetes.io/tls Secret that the routing table
// and the certificates use, with the API's names and JSON field names, so that the JSON
// of an Ingress (the plan's copy of it) decodes into them with encoding/json. They exist
// so that the ingress agent imports no Kubernetes package (netlab-agent runs it without
// the Kubernetes API's package initialisation); netlab/planbuild, which validates the
// objects with the Kubernetes types, is where they come from.

// ObjectMeta is the part of an object's metadata the ingress uses.
type ObjectMeta struct {
	Name        string            `json:"name,omitempty"`
	Namespace   string            `json:"namespace,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// CreationTimestamp orders Ingresses that claim the same host and path (the older
	// wins); the zero time when absent (JSON null, as the API writes an unset one).
	CreationTimestamp time.Time `json:"creationTimestamp,omitzero"`
}

// Ingress is a networking.k8s.io/v1 Ingress: its metadata and spec.
type Ingress struct {
	ObjectMeta `json:"metadata,omitempty"`
	Spec       IngressSpec `json:"spec,omitempty"`
}

// IngressSpec is an Ingress's spec.
type IngressSpec struct {
	IngressClassName *string         `json:"ingressClassName,omitempty"`
	DefaultBackend   *IngressBackend `json:"defaultBackend,omitempty"`
	TLS              []IngressTLS    `json:"tls,omitempty"`
	Rules            []IngressRule   `json:"rules,omitempty"`
}

// IngressTLS is one spec.tls entry.
type IngressTLS struct {
	Hosts      []string `json:"hosts,omitempty"`
	SecretName string   `json:"secretName,omitempty"`
}

// IngressRule is one spec.rules entry: a host and its HTTP paths.
type IngressRule struct {
	Host             string `json:"host,omitempty"`
	IngressRuleValue `json:",inline"`
}

// IngressRuleValue holds a rule's HTTP paths (inline in the rule, as in the API).
type IngressRuleValue struct {
	HTTP *HTTPIngressRuleValue `json:"http,omitempty"`
}

// HTTPIngressRuleValue is a rule's list of paths.
type HTTPIngressRuleValue struct {
	Paths []HTTPIngressPath `json:"paths"`
}

// PathType is how a path matches: Exact, Prefix or ImplementationSpecific.
type PathType string

// The path types of the API.
const (
	PathTypeExact                  PathType = "Exact"
	PathTypePrefix                 PathType = "Prefix"
	PathTypeImplementationSpecific PathType = "ImplementationSpecific"
)

// HTTPIngressPath is one path of a rule and its backend.
type HTTPIngressPath struct {
	Path     string         `json:"path,omitempty"`
	PathType *PathType      `json:"pathType,omitempty"`
	Backend  IngressBackend `json:"backend"`
}

// IngressBackend is a Service backend, or a resource backend (which the ingress does
// not serve: it is reported and skipped).
type IngressBackend struct {
	Service  *IngressServiceBackend `json:"service,omitempty"`
	Resource *ResourceBackend       `json:"resource,omitempty"`
}

// ResourceBackend is a backend naming another object instead of a Service.
type ResourceBackend struct {
	APIGroup *string `json:"apiGroup,omitempty"`
	Kind     string  `json:"kind"`
	Name     string  `json:"name"`
}

// IngressServiceBackend names a Service and one of its ports.
type IngressServiceBackend struct {
	Name string             `json:"name"`
	Port ServiceBackendPort `json:"port,omitempty"`
}

// ServiceBackendPort is a Service port given by name or by number (exactly one).
type ServiceBackendPort struct {
	Name   string `json:"name,omitempty"`
	Number int32  `json:"number,omitempty"`
}

// SecretType is a Secret's type.
type SecretType string

// Secret types and the keys of a kubernetes.io/tls Secret's data, as in the core API.
const (
	SecretTypeTLS    SecretType = "kubernetes.io/tls"
	SecretTypeOpaque SecretType = "Opaque"
	TLSCertKey                  = "tls.crt"
	TLSPrivateKeyKey            = "tls.key"
)

// Secret is the part of a core/v1 Secret the certificates use.
type Secret struct {
	ObjectMeta `json:"metadata,omitempty"`
	Type       SecretType        `json:"type,omitempty"`
	Data       map[string][]byte `json:"data,omitempty"`
	// StringData is data written as text (a scenario may give a Secret that way).
	StringData map[string]string `json:"stringData,omitempty"`
}

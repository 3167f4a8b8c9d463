package kubeproxy

import (
	"reflect"
	"slices"
)

// ChangedServices returns the Services ("ns/name") whose ports or endpoints differ
// between old and new, including Services added or removed: the Changed set for a
// partial sync (Options.Changed). Endpoint and port order do not matter.
func ChangedServices(old, new []ServicePort) map[string]bool {
	group := func(ports []ServicePort) map[string][]ServicePort {
		m := map[string][]ServicePort{}
		for _, p := range ports {
			p.Endpoints = slices.Clone(p.Endpoints)
			sortEndpoints(p.Endpoints)
			if len(p.Endpoints) == 0 {
				p.Endpoints = nil
			}
			m[p.ServiceName()] = append(m[p.ServiceName()], p)
		}
		for _, ps := range m {
			SortPorts(ps)
		}
		return m
	}
	a, b := group(old), group(new)
	changed := map[string]bool{}
	for name, ps := range a {
		if !reflect.DeepEqual(ps, b[name]) {
			changed[name] = true
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			changed[name] = true
		}
	}
	return changed
}

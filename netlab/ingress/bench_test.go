package ingress

import (
	"github.com/netlabdev/netlab/netlab/rawio"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkMatch measures a lookup in a table of 50 hosts with 20 paths each.
func BenchmarkMatch(b *testing.B) {
	var ings []Ingress
	for h := range 50 {
		var paths []HTTPIngressPath
		for p := range 20 {
			paths = append(paths, mkPath("/svc"+string(rune('a'+p))+"/v1", prefix, "svc"))
		}
		ings = append(ings, mkIngress("default", "i"+string(rune('a'+h%26))+string(rune('a'+h/26)),
			mkRule("host"+string(rune('a'+h%26))+string(rune('a'+h/26))+".example", paths...)))
	}
	table, _ := Build(ings, "")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := table.Match("HOSTBA.example:8080", "/svct/v1/users/42"); !ok {
			b.Fatal("no match")
		}
	}
}

// BenchmarkProxy measures the whole proxy over loopback, keep-alive on both sides.
func BenchmarkProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	defer up.Close()
	table, _ := Build([]Ingress{mkIngress("default", "b", mkRule("app.example", mkPath("/", prefix, "web")))}, "")
	h, _ := NewHandler(Options{Node: "n", Resolve: staticResolver(map[string]string{"default/web": hostOf(up)}), AccessLog: io.Discard}, table)
	px := httptest.NewUnstartedServer(h)
	px.Listener = rawio.Listener(px.Listener)
	px.Start()
	defer px.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", px.URL+"/", nil)
			req.Host = "app.example"
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatal(resp.StatusCode)
			}
		}
	})
}

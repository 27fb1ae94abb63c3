package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/verihook/verihook/internal/httpapi"
)

// apiDoc is what the tests read of the OpenAPI document.
type apiDoc struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

func readDoc(t *testing.T) apiDoc {
	t.Helper()
	var doc apiDoc
	if err := json.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// TestOpenAPICoversEveryRoute: every route of the table is in the
// document, with its least role, and the document has no operation that is
// not a route.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	t.Parallel()
	doc := readDoc(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	routes := map[string]bool{"GET /api/v1/openapi.json": true}
	for _, rt := range httpapi.Routes() {
		routes[rt.Pattern] = true
		method, path, _ := strings.Cut(rt.Pattern, " ")
		raw, ok := doc.Paths[path][strings.ToLower(method)]
		if !ok {
			t.Errorf("route %s is missing from openapi.json", rt.Pattern)
			continue
		}
		var op struct {
			Role string `json:"x-verihook-role"`
		}
		json.Unmarshal(raw, &op)
		if op.Role != string(rt.Role) {
			t.Errorf("openapi.json gives %s the role %q, the route table %q", rt.Pattern, op.Role, rt.Role)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if p := strings.ToUpper(method) + " " + path; !routes[p] {
				t.Errorf("openapi.json documents %s, which is no route", p)
			}
		}
	}
}

// TestOpenAPISchemasCompile: every operation documents a success, and
// every response schema of the document compiles as JSON Schema 2020-12,
// OpenAPI 3.1's dialect, with its references resolved.
func TestOpenAPISchemasCompile(t *testing.T) {
	t.Parallel()
	doc := readDoc(t)
	whole, err := jsonschema.UnmarshalJSON(bytes.NewReader(httpapi.OpenAPI()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("openapi.json", whole); err != nil {
		t.Fatal(err)
	}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			var op struct {
				Responses map[string]struct {
					Ref     string                     `json:"$ref"`
					Content map[string]json.RawMessage `json:"content"`
				} `json:"responses"`
			}
			json.Unmarshal(raw, &op)
			success := false
			for status, r := range op.Responses {
				success = success || strings.HasPrefix(status, "2")
				if _, ok := r.Content["application/json"]; !ok {
					continue
				}
				loc := "openapi.json#/paths/" + pointer(path) + "/" + method + "/responses/" + status + "/content/application~1json/schema"
				if _, err := c.Compile(loc); err != nil {
					t.Errorf("%s %s %s: %v", method, path, status, err)
				}
			}
			if !success {
				t.Errorf("%s %s documents no success (2xx)", method, path)
			}
		}
	}
}

// pointer escapes s as a JSON pointer token in a URL fragment.
func pointer(s string) string {
	return url.PathEscape(strings.NewReplacer("~", "~0", "/", "~1").Replace(s))
}

// TestOpenAPIServed: the document is served without a token.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer((&httpapi.Server{}).Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(body, httpapi.OpenAPI()) {
		t.Errorf("GET /api/v1/openapi.json = %d %q, %d bytes; want 200 and the document", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
}

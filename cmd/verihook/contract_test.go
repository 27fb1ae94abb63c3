package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/verihook/verihook/internal/httpapi"
)

// TestMain holds every test of this package to the API's contract: each
// answer a test gets from /api/v1 through http.DefaultClient (which the
// tests use; http.DefaultTransport stays as it is, as the delivery client
// clones it) is validated against the OpenAPI document
// (httpapi.OpenAPI). An answer that does not validate fails the request the
// test made, with the reason, and the package's run.
func TestMain(m *testing.M) {
	c, err := newContract(httpapi.OpenAPI())
	if err != nil {
		fmt.Fprintln(os.Stderr, "API contract:", err)
		os.Exit(1)
	}
	http.DefaultClient.Transport = &contractTransport{base: http.DefaultTransport, c: c}
	code := m.Run()
	if f := flag.Lookup("test.run"); code == 0 && f != nil && f.Value.String() == "" && !testing.Short() {
		// The whole package ran: every operation must have been seen to
		// succeed, so that no route escapes the check.
		for _, op := range c.unproven() {
			fmt.Fprintf(os.Stderr, "FAIL: no test got a success from %s through http.DefaultClient: the contract is not checked there\n", op)
			code = 1
		}
	}
	if v := c.violations(); len(v) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d answers of the API do not match openapi.json:\n  %s\n", len(v), strings.Join(v, "\n  "))
		code = 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "API contract: validated %s\n", c.summary())
	}
	os.Exit(code)
}

// contract validates answers against an OpenAPI 3.1 document, with
// github.com/santhosh-tekuri/jsonschema/v6: OpenAPI 3.1's schemas are JSON
// Schema 2020-12, which it implements in full (it passes the official
// JSON-Schema-Test-Suite), with no dependency of its own.
type contract struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	ops      *http.ServeMux // finds the operation of a request: its pattern is "METHOD path"

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema // by location
	seen    map[string]int                // validated answers by "METHOD path status"
	bad     []string
}

func newContract(raw []byte) (*contract, error) {
	whole, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := &contract{doc: whole.(map[string]any), compiler: jsonschema.NewCompiler(), ops: http.NewServeMux(),
		schemas: map[string]*jsonschema.Schema{}, seen: map[string]int{}}
	c.compiler.DefaultDraft(jsonschema.Draft2020)
	c.compiler.AssertFormat() // date-time and the like are checked, not only noted
	if err := c.compiler.AddResource("openapi.json", whole); err != nil {
		return nil, err
	}
	paths, _ := c.doc["paths"].(map[string]any)
	for path, ops := range paths {
		for method := range ops.(map[string]any) {
			c.ops.Handle(strings.ToUpper(method)+" "+path, http.NotFoundHandler())
		}
	}
	return c, nil
}

// pointer escapes s as a JSON pointer token in a URL fragment.
func pointer(s string) string {
	return url.PathEscape(strings.NewReplacer("~", "~0", "/", "~1").Replace(s))
}

// check returns why an answer of status with body, to req, does not match
// the document; "" when it does or when req is not an operation of it.
func (c *contract) check(req *http.Request, status int, contentType string, body []byte) string {
	_, pattern := c.ops.Handler(req)
	if pattern == "" {
		return "" // not an operation of the API (an unknown route, say)
	}
	method, path, _ := strings.Cut(pattern, " ")
	op := c.doc["paths"].(map[string]any)[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
	responses := op["responses"].(map[string]any)
	key := strconv.Itoa(status)
	r, ok := responses[key]
	loc := "openapi.json#/paths/" + pointer(path) + "/" + strings.ToLower(method) + "/responses/" + key
	if !ok {
		if status < 400 {
			return fmt.Sprintf("status %d is not documented", status)
		}
		r, loc = responses["default"], "openapi.json#/paths/"+pointer(path)+"/"+strings.ToLower(method)+"/responses/default"
	}
	if ref, ok := r.(map[string]any)["$ref"].(string); ok { // a shared response
		loc = "openapi.json" + ref
		name := strings.TrimPrefix(ref, "#/components/responses/")
		r = c.doc["components"].(map[string]any)["responses"].(map[string]any)[name]
	}
	c.mu.Lock()
	c.seen[pattern+" "+key]++
	c.mu.Unlock()
	content, _ := r.(map[string]any)["content"].(map[string]any)
	if content["application/json"] == nil {
		if len(body) > 0 {
			return fmt.Sprintf("status %d has no body in the document, the answer has %d bytes", status, len(body))
		}
		return ""
	}
	if mt, _, _ := mime.ParseMediaType(contentType); mt != "application/json" {
		return fmt.Sprintf("Content-Type %q, want application/json", contentType)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Sprintf("the body is not JSON: %v", err)
	}
	sch, err := c.schema(loc + "/content/application~1json/schema")
	if err != nil {
		return fmt.Sprintf("the document's schema does not compile: %v", err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Sprintf("%v\nbody: %.2000s", err, body)
	}
	return ""
}

func (c *contract) schema(loc string) (*jsonschema.Schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.schemas[loc]; ok {
		return s, nil
	}
	s, err := c.compiler.Compile(loc)
	if err == nil {
		c.schemas[loc] = s
	}
	return s, err
}

func (c *contract) violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.bad)
}

// unproven lists the operations of the document that answered no success
// (2xx) that was validated.
func (c *contract) unproven() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for path, ops := range c.doc["paths"].(map[string]any) {
		for method := range ops.(map[string]any) {
			op := strings.ToUpper(method) + " " + path
			ok := false
			for k := range c.seen {
				ok = ok || strings.HasPrefix(k, op+" 2")
			}
			if !ok {
				out = append(out, op)
			}
		}
	}
	sort.Strings(out)
	return out
}

// summary says how many answers were validated, by operation and status.
func (c *contract) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lines []string
	total := 0
	for k, n := range c.seen {
		lines = append(lines, fmt.Sprintf("%5d  %s", n, k))
		total += n
	}
	sort.Strings(lines)
	return fmt.Sprintf("%d answers:\n%s", total, strings.Join(lines, "\n"))
}

// contractTransport checks the API's answers against the contract as they
// arrive.
type contractTransport struct {
	base http.RoundTripper
	c    *contract
}

func (t *contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || !strings.HasPrefix(req.URL.Path, "/api/v1/") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if why := t.c.check(req, resp.StatusCode, resp.Header.Get("Content-Type"), body); why != "" {
		msg := fmt.Sprintf("%s %s answered %d, which does not match openapi.json: %s", req.Method, req.URL.Path, resp.StatusCode, why)
		t.c.mu.Lock()
		t.c.bad = append(t.c.bad, msg)
		t.c.mu.Unlock()
		return nil, fmt.Errorf("API contract: %s", msg)
	}
	return resp, nil
}

// TestContractRejectsWhatItShould: the contract check refuses an answer
// that breaks the document (a missing field, a wrong type, an undocumented
// status or field) and accepts one that keeps it.
func TestContractRejectsWhatItShould(t *testing.T) {
	t.Parallel()
	c, err := newContract(httpapi.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	req := func(method, path string) *http.Request {
		r, _ := http.NewRequest(method, "http://verihook.test"+path, nil)
		return r
	}
	tok := `{"id":"tok_1","name":"n","role":"viewer","created_at":"2026-11-29T00:00:00Z","state":"active"}`
	for _, tc := range []struct {
		name        string
		r           *http.Request
		status      int
		contentType string
		body        string
		ok          bool
	}{
		{"a valid token", req("DELETE", "/api/v1/tokens/tok_1"), 200, "application/json", tok, true},
		{"a valid error", req("DELETE", "/api/v1/tokens/tok_1"), 404, "application/json", `{"error":"no","code":"not_found"}`, true},
		{"a valid empty list", req("GET", "/api/v1/audit"), 200, "application/json", `{"data":[]}`, true},
		{"no content", req("DELETE", "/api/v1/endpoints/x"), 204, "", "", true},
		{"an unknown route", req("GET", "/api/v1/nothing"), 404, "text/plain", "404", true},
		{"a missing field", req("DELETE", "/api/v1/tokens/tok_1"), 200, "application/json", strings.Replace(tok, `"state":"active"`, `"x":1`, 1), false},
		{"a wrong type", req("DELETE", "/api/v1/tokens/tok_1"), 200, "application/json", strings.Replace(tok, `"name":"n"`, `"name":7`, 1), false},
		{"an undocumented field", req("DELETE", "/api/v1/tokens/tok_1"), 200, "application/json", strings.Replace(tok, `"name":"n"`, `"name":"n","hash":"h"`, 1), false},
		{"a bad time", req("DELETE", "/api/v1/tokens/tok_1"), 200, "application/json", strings.Replace(tok, `2026-11-29T00:00:00Z`, `yesterday`, 1), false},
		{"an undocumented status", req("DELETE", "/api/v1/tokens/tok_1"), 202, "application/json", tok, false},
		{"an error code not documented", req("GET", "/api/v1/audit"), 500, "application/json", `{"error":"x","code":"oops"}`, false},
		{"not JSON", req("GET", "/api/v1/audit"), 200, "text/html", `<p>`, false},
	} {
		why := c.check(tc.r, tc.status, tc.contentType, []byte(tc.body))
		if (why == "") != tc.ok {
			t.Errorf("%s: check = %q, want ok %v", tc.name, why, tc.ok)
		}
	}
	// What answered a success is proven; what did not is listed.
	unproven := c.unproven()
	if slices.Contains(unproven, "DELETE /api/v1/tokens/{id}") || !slices.Contains(unproven, "GET /api/v1/sources") {
		t.Errorf("unproven = %v; want GET /api/v1/sources in it and DELETE /api/v1/tokens/{id} not", unproven)
	}
}

// TestOpenAPIServedWithoutToken: the running program serves its contract
// to anyone: it describes the routes and holds no data.
func TestOpenAPIServedWithoutToken(t *testing.T) {
	t.Parallel()
	m := startMain(t, testConfig(t))
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if code := getJSON(t, "http://"+m.Addr()+"/api/v1/openapi.json", "", &doc); code != 200 || doc.OpenAPI != "3.1.0" || len(doc.Paths) == 0 {
		t.Errorf("GET /api/v1/openapi.json without a token = %d, openapi %q, %d paths", code, doc.OpenAPI, len(doc.Paths))
	}
}

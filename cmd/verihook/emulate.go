package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// emulator is `verihook simulate serve`: an offline stand-in for the
// providers. It sends each provider's callbacks itself, signed as the
// provider signs them, keeps the state they report per verification, and
// serves each provider's status API from that state, so that a callback can
// be dropped and reconciliation seen to recover it. One secret serves as
// every secret and API credential of every provider.
type emulator struct {
	reg     provider.Registry
	secrets map[string]string
	client  *http.Client

	mu sync.Mutex
	// state holds the last observation sent, by provider and reference.
	state map[string]map[string]hub.Observation
}

func newEmulator(reg provider.Registry, secret string) *emulator {
	return &emulator{reg: reg, secrets: simSecrets(secret), client: &http.Client{Timeout: 30 * time.Second},
		state: map[string]map[string]hub.Observation{}}
}

// handler serves the status APIs of the providers that have one, and
// POST /callbacks/{provider}/{event}.
func (em *emulator) handler() http.Handler {
	mux := http.NewServeMux()
	for _, name := range em.reg.Names() {
		if p, ok := em.reg[name].(provider.Poller); ok {
			mux.Handle(p.EmulateStatus(em.secrets, func(ref string) (hub.Observation, bool) {
				em.mu.Lock()
				defer em.mu.Unlock()
				o, ok := em.state[name][ref]
				return o, ok
			}))
		}
	}
	mux.HandleFunc("POST /callbacks/{provider}/{event}", em.handleCallback)
	return mux
}

// callbackRequest asks the emulator for one callback: the field flags of
// simulate, where to send it, and whether to drop it (change the state
// without sending: a lost callback).
type callbackRequest struct {
	fieldFlags `yaml:",inline"`
	To         string `yaml:"to"`
	Drop       bool   `yaml:"drop"`
}

// handleCallback builds and signs a provider's callback, records the state
// it reports, and sends it to the request's "to" unless it is dropped. It
// answers {"ref", "sent", "status", "answer"}.
func (em *emulator) handleCallback(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, err error) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
	}
	p, err := em.reg.Get(r.PathValue("provider"))
	if err != nil {
		fail(http.StatusNotFound, errors.New(hub.ErrorMessage(err)))
		return
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	var req callbackRequest
	if err := yaml.Unmarshal(raw, &req); err != nil { // YAML reads JSON too
		fail(http.StatusBadRequest, fmt.Errorf("body: %w", err))
		return
	}
	req.Event = r.PathValue("event")
	if req.To == "" && !req.Drop {
		fail(http.StatusBadRequest, errors.New(`"to" (the ingest URL) is required unless "drop" is true`))
		return
	}
	f, err := req.fields(time.Now().UTC())
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	body, h, err := p.Build(req.Event, f)
	if err != nil {
		fail(http.StatusBadRequest, errors.New(hub.ErrorMessage(err)))
		return
	}
	if h == nil {
		h = http.Header{}
	}
	if body, err = p.Sign(em.secrets, h, body); err != nil {
		fail(http.StatusInternalServerError, err)
		return
	}
	// The state is what the provider's own adapter reads in the callback.
	parsed, _ := p.Parse(h, body)
	ref := ""
	em.mu.Lock()
	for _, o := range parsed.Observations {
		if em.state[p.Name()] == nil {
			em.state[p.Name()] = map[string]hub.Observation{}
		}
		em.state[p.Name()][o.ProviderRef], ref = o, o.ProviderRef
	}
	em.mu.Unlock()
	out := map[string]any{"ref": ref, "sent": !req.Drop}
	if !req.Drop {
		status, answer, err := post(r.Context(), em.client, req.To, request{h: h, body: body})
		if err != nil {
			fail(http.StatusBadGateway, err)
			return
		}
		out["status"], out["answer"] = status, answer
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// runSimulateServe runs the emulator until ctx ends.
func runSimulateServe(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "simulate serve", "simulate serve --secret S [--listen 127.0.0.1:8090]")
	addr := fs.String("listen", "127.0.0.1:8090", "address to listen on")
	secret := fs.String("secret", "", "every secret and API credential of every emulated provider")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("--secret is required")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newEmulator(registry(), *secret).handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(e.stdout, "emulating the providers' status APIs on http://%s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

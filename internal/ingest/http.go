package ingest

import (
	"context"

	"github.com/verihook/verihook/internal/httpapi"
)

// Receiver is a Service as the HTTP API's httpapi.Receiver, for
// POST /ingest/{source_id}; Admit and Reject are the Service's own.
type Receiver struct{ *Service }

var _ httpapi.Receiver = Receiver{}

// Receive receives the request (see Service.Receive) and answers with what
// the API reports of it.
func (r Receiver) Receive(ctx context.Context, req httpapi.IngestRequest) (httpapi.IngestResponse, error) {
	res, err := r.Service.Receive(ctx, Request(req))
	return httpapi.IngestResponse{Status: res.Status, MessageID: res.MessageID, Duplicate: res.Duplicate}, err
}

package idenfy

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// Parse turns an authenticated iDenfy callback into hub terms (see the
// package documentation for the rules): one kyc observation for an
// identification webhook, an applicant.document_expiration event for a
// document-expiration one. It returns an EUNRECOGNIZED *hub.Error for a body
// that is not a JSON object of the expected shape, a missing scanRef, or a
// callback whose event type and body together do not say what it is; the
// Parsed returned with it still holds Body, EventName (when known) and
// DedupKey.
func (Provider) Parse(h http.Header, body []byte) (hub.Parsed, error) {
	p := hub.Parsed{Body: body, EventName: eventType(h)}
	decoded, err := hub.ReadJSON(body, hub.NumbersAsWritten) // numbers kept as written: no two hash alike by rounding
	if err != nil {
		p.DedupKey = hub.CanonicalHashOf(map[string]any{"event": p.EventName, "raw": hub.RawHash(body)})
		return p, provider.Unrecognized("body is not valid JSON")
	}
	p, err = parse(p, decoded)
	// The event name (derived from the body when no header gave it) is part
	// of the key: the automatic and the manual webhook may have equal bodies.
	p.DedupKey = hub.CanonicalHashOf(map[string]any{"event": p.EventName, "body": decoded})
	return p, err
}

// parse reads a JSON body; p holds the event name the request gave. The
// body is read once: the fields are taken from decoded, and the dedup hash
// is written from it.
func parse(p hub.Parsed, decoded hub.JSON) (hub.Parsed, error) {
	event := canonicalEvent(p.EventName)
	switch event {
	case EventAgeEstimation:
		return ageEstimation(p, decoded)
	case EventFacialAuthentication:
		return facialAuthentication(p, decoded)
	}
	cb, err := callbackOf(decoded)
	if err != nil && p.EventName != "" && !known(event) {
		return p, provider.Unrecognized("unsupported event type %q: %s", p.EventName, describe(err))
	} else if err != nil {
		return p, provider.Unrecognized("%s", describe(err))
	}
	if event == EventDocumentExpiration || !known(event) && cb.ExpirationThreshold != "" {
		return cb.documentExpiration(p)
	}
	st := cb.Status
	if st == nil {
		st = &statusBlock{}
	}
	overall := strings.ToUpper(strings.TrimSpace(string(st.Overall)))
	if !known(event) {
		// No event type, or one no document names: the body decides, as it
		// does for the legacy webhook that fires for every outcome.
		if p.EventName != "" && overall == "" {
			return p, provider.Unrecognized("unsupported event type %q and no status.overall to decide from", p.EventName)
		}
		event = EventIdentification
		if overall == "EXPIRED" {
			event = EventExpired
		}
		p.EventName = provider.Or(p.EventName, event)
	}

	scanRef := strings.TrimSpace(string(cb.ScanRef))
	if scanRef == "" {
		return p, provider.Unrecognized("scanRef is missing")
	}
	status, final, err := statusOf(event, overall, cb.final(st))
	if err != nil {
		return p, err
	}
	finish := cb.FinishTime
	if finish.IsZero() {
		finish = st.FinishTime
	}
	p.Observations = []hub.Observation{{
		VerificationKey: hub.VerificationKey{ProviderRef: scanRef},
		Provider:        Name,
		Kind:            hub.KindKYC,
		ApplicantRef:    strings.TrimSpace(string(cb.ClientID)),
		Status:          status,
		Final:           final,
		Reasons:         st.reasons(),
		ProviderTime:    finish.Time,
		ProviderEvent:   p.EventName,
	}}
	return p, nil
}

// documentExpiration maps a DOCUMENT_EXPIRATION webhook to an
// applicant.document_expiration event; it changes no verification's status.
func (cb *callback) documentExpiration(p hub.Parsed) (hub.Parsed, error) {
	p.EventName = provider.Or(p.EventName, EventDocumentExpiration)
	scanRef := strings.TrimSpace(string(cb.ScanRef))
	threshold := strings.TrimSpace(string(cb.ExpirationThreshold))
	if scanRef == "" || threshold == "" {
		return p, provider.Unrecognized("%s without scanRef or expirationThreshold", EventDocumentExpiration)
	}
	p.Events = []hub.EventDraft{{Type: hub.EventApplicantDocumentExpiration, Data: hub.ApplicantDocumentExpiration{
		ProviderRef:  scanRef,
		ApplicantRef: strings.TrimSpace(string(cb.ClientID)),
		Threshold:    threshold,
		ExpiresOn:    strings.TrimSpace(string(cb.DocumentExpiration)),
	}}}
	return p, nil
}

// ageEstimation maps an AGE_ESTIMATION webhook to an applicant.age_estimated
// event.
func ageEstimation(p hub.Parsed, decoded hub.JSON) (hub.Parsed, error) {
	var w struct {
		ScanRef, ClientID, Status, Outcome, Verdict, OccurredAt text
		EstimatedAge, Confidence                                *float64
	}
	r, err := objectReader(decoded)
	if err == nil {
		r.read("scanRef", w.ScanRef.set)
		r.read("clientId", w.ClientID.set)
		r.read("status", w.Status.set)
		r.read("outcome", w.Outcome.set)
		r.read("verdict", w.Verdict.set)
		r.read("occurredAt", w.OccurredAt.set)
		r.read("estimatedAge", number(&w.EstimatedAge))
		r.read("confidence", number(&w.Confidence))
		err = r.err
	}
	if err != nil {
		return p, provider.Unrecognized("%s: %s", EventAgeEstimation, describe(err))
	}
	if strings.TrimSpace(string(w.ScanRef)) == "" || strings.TrimSpace(string(w.Status)) == "" {
		return p, provider.Unrecognized("%s without scanRef or status", EventAgeEstimation)
	}
	p.Events = []hub.EventDraft{{Type: hub.EventApplicantAgeEstimated, Data: hub.ApplicantAgeEstimated{
		ProviderRef: strings.TrimSpace(string(w.ScanRef)), ApplicantRef: strings.TrimSpace(string(w.ClientID)),
		Status: string(w.Status), Outcome: string(w.Outcome), Verdict: string(w.Verdict),
		EstimatedAge: w.EstimatedAge, Confidence: w.Confidence, OccurredAt: string(w.OccurredAt),
	}}}
	return p, nil
}

// facialAuthentication maps a FACIAL_AUTHENTICATION webhook to an
// applicant.face_authentication_ended event: it succeeded when it names no
// failReason. The face photo link and the IP address are left out.
func facialAuthentication(p hub.Parsed, decoded hub.JSON) (hub.Parsed, error) {
	var w struct {
		Token, Type, Method, FailReason text
		RiskTags                        tags
	}
	r, err := objectReader(decoded)
	if err == nil {
		r.read("token", w.Token.set)
		r.read("type", w.Type.set)
		r.read("method", w.Method.set)
		r.read("failReason", w.FailReason.set)
		r.read("riskTags", w.RiskTags.set)
		err = r.err
	}
	if err != nil {
		return p, provider.Unrecognized("%s: %s", EventFacialAuthentication, describe(err))
	}
	if strings.TrimSpace(string(w.Token)) == "" {
		return p, provider.Unrecognized("%s without token", EventFacialAuthentication)
	}
	p.Events = []hub.EventDraft{{Type: hub.EventApplicantFaceAuthenticationEnded, Data: hub.ApplicantFaceAuthenticationEnded{
		SessionRef: strings.TrimSpace(string(w.Token)), Kind: string(w.Type), Method: string(w.Method),
		Succeeded: strings.TrimSpace(string(w.FailReason)) == "", FailReason: string(w.FailReason),
		RiskTags: append([]string{}, w.RiskTags...),
	}}}
	return p, nil
}

// statusOf maps an understood identification event (canonical spelling),
// status.overall (upper case) and the final flag to a status and whether it
// is final. A final status is a decision: a final webhook whose overall is
// REVIEWING, NOT_REVIEWED or ACTIVE, or a final RESUBMITTED one without a
// decision, is not final.
func statusOf(event, overall string, final bool) (hub.Status, bool, error) {
	switch event {
	case EventExpired:
		return hub.StatusExpired, true, nil
	case EventCancelled:
		return hub.StatusCanceled, true, nil
	case EventResubmitted, EventAutoFinished, EventIdentification:
		if !final {
			return hub.StatusReview, false, nil
		}
	case EventManualFinished:
	default:
		return "", false, provider.Unrecognized("unsupported event type %q", event)
	}
	s, ok := overallStatus[overall]
	switch {
	case !ok && event == EventResubmitted:
		return hub.StatusReview, false, nil
	case !ok:
		return "", false, provider.Unrecognized("unknown status.overall %q for %s", overall, event)
	}
	return s, s != hub.StatusReview && s != hub.StatusPending, nil
}

// overallStatus maps the status.overall values of a decided identification.
var overallStatus = map[string]hub.Status{
	"APPROVED":  hub.StatusApproved,
	"DENIED":    hub.StatusRejected,
	"SUSPECTED": hub.StatusSuspected,
	"EXPIRED":   hub.StatusExpired,
	"REVIEWING": hub.StatusReview,
	// The oldest documents' values: not reviewed yet, and a token not used
	// yet that the applicant may still use.
	"NOT_REVIEWED": hub.StatusReview,
	"ACTIVE":       hub.StatusPending,
}

// callback is the part of an identification or document-expiration webhook
// that Parse reads (see callbackOf for the names in the body).
type callback struct {
	ClientID   text
	ScanRef    text
	Final      flag
	FinishTime unixTime
	Status     *statusBlock
	// DOCUMENT_EXPIRATION's fields.
	ExpirationThreshold text
	DocumentExpiration  text
}

// statusBlock is the callback's status object.
type statusBlock struct {
	Overall          text
	FraudTags        tags
	MismatchTags     tags
	SuspicionReasons tags
	AutoFace         text
	ManualFace       text
	AutoDocument     text
	ManualDocument   text
	FinishTime       unixTime // old format
}

// final returns the final flag as sent or, when the body has none (the old
// format), whether a manual review result is present.
func (cb *callback) final(st *statusBlock) bool {
	if cb.Final.sent {
		return cb.Final.v
	}
	return strings.TrimSpace(string(st.ManualDocument)) != "" || strings.TrimSpace(string(st.ManualFace)) != ""
}

// reasons lists the tags, then the face and document results that did not
// pass, each once, in that order.
func (st *statusBlock) reasons() []string {
	var out []string
	add := func(r string) {
		if r = strings.TrimSpace(r); r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	for _, list := range []tags{st.FraudTags, st.MismatchTags, st.SuspicionReasons} {
		for _, r := range list {
			add(r)
		}
	}
	for _, r := range []text{st.AutoFace, st.ManualFace} {
		if strings.TrimSpace(string(r)) != "FACE_MATCH" {
			add(string(r))
		}
	}
	for _, r := range []text{st.AutoDocument, st.ManualDocument} {
		if strings.TrimSpace(string(r)) != "DOC_VALIDATED" {
			add(string(r))
		}
	}
	return out
}

// describe renders a decoding error without Go type names.
func describe(err error) string {
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ) && typ.Field != "":
		return "field " + strconv.Quote(typ.Field) + " is " + jsonKind(typ.Value) + ", not of the expected type"
	case errors.As(err, &typ):
		return "body is " + jsonKind(typ.Value) + ", not a JSON object"
	default:
		return "body is not an iDenfy callback"
	}
}

// jsonKind names a JSON value kind as UnmarshalTypeError.Value spells it.
func jsonKind(v string) string {
	switch {
	case v == "":
		return "a value"
	case strings.HasPrefix(v, "number"):
		return "a number"
	case v == "array" || v == "object":
		return "an " + v
	default:
		return "a " + v
	}
}

// callbackOf reads a callback from a body as json.Unmarshal into a callback
// would (names matched exactly, or else without regard to case).
func callbackOf(v hub.JSON) (callback, error) {
	var cb callback
	r, err := objectReader(v)
	if err != nil {
		return cb, err
	}
	r.read("clientId", cb.ClientID.set)
	r.read("scanRef", cb.ScanRef.set)
	r.read("final", cb.Final.set)
	r.read("finishTime", cb.FinishTime.set)
	r.read("expirationThreshold", cb.ExpirationThreshold.set)
	r.read("documentExpiration", cb.DocumentExpiration.set)
	r.read("status", func(v hub.JSON) error {
		switch v.Kind() {
		case hub.JSONNull:
			cb.Status = nil
			return nil
		case hub.JSONObject:
		default:
			return typeError(v, reflect.TypeFor[statusBlock]())
		}
		st := &statusBlock{}
		sr := &fieldReader{v: v}
		sr.read("overall", st.Overall.set)
		sr.read("fraudTags", st.FraudTags.set)
		sr.read("mismatchTags", st.MismatchTags.set)
		sr.read("suspicionReasons", st.SuspicionReasons.set)
		sr.read("autoFace", st.AutoFace.set)
		sr.read("manualFace", st.ManualFace.set)
		sr.read("autoDocument", st.AutoDocument.set)
		sr.read("manualDocument", st.ManualDocument.set)
		sr.read("finishTime", st.FinishTime.set)
		cb.Status = st
		return sr.err
	})
	return cb, r.err
}

// objectReader returns a reader of the fields of v, a decoded body; null has
// none, and anything but an object is an error (as for json.Unmarshal into a
// struct).
func objectReader(v hub.JSON) (*fieldReader, error) {
	if k := v.Kind(); k != hub.JSONObject && k != hub.JSONNull {
		return nil, typeError(v, reflect.TypeFor[map[string]any]())
	}
	return &fieldReader{v: v}, nil
}

// number returns a setter of *f from a decoded number; null is nil.
func number(f **float64) func(v hub.JSON) error {
	return func(v hub.JSON) error {
		*f = nil
		switch n, _ := v.Number(); v.Kind() {
		case hub.JSONNull:
		case hub.JSONNumber:
			x, err := n.Float64()
			if err != nil {
				return typeError(v, reflect.TypeFor[float64]())
			}
			*f = &x
		default:
			return typeError(v, reflect.TypeFor[float64]())
		}
		return nil
	}
}

// fieldReader reads the fields of an object (or of null, which has none)
// and keeps the first error.
type fieldReader struct {
	v   hub.JSON
	err error
}

// read calls set with the value of field name, if the object has it: the
// last one named exactly name, else the last one named so in another case.
// A type error of set gets the field's path, as json.Unmarshal's has it:
// name, or name.inner when set read an object of its own. The path is
// written only for an error: most bodies have none.
func (r *fieldReader) read(name string, set func(v hub.JSON) error) {
	if r.err != nil {
		return
	}
	if v := r.v.FieldFold(name); v.Kind() != hub.JSONAbsent {
		r.err = set(v)
		if typ, ok := r.err.(*json.UnmarshalTypeError); ok {
			if typ.Field != "" {
				name += "." + typ.Field
			}
			typ.Field = name
		}
	}
}

// text is a JSON string, or a number kept as written; null is "".
type text string

// set reads t from a value.
func (t *text) set(v hub.JSON) error {
	switch v.Kind() {
	case hub.JSONNull:
		*t = ""
	case hub.JSONString:
		s, _ := v.Str()
		*t = text(s)
	case hub.JSONNumber:
		n, _ := v.Number()
		*t = text(n)
	default:
		return typeError(v, reflect.TypeFor[string]())
	}
	return nil
}

// flag is a JSON boolean (or "true"/"false") that remembers whether it was
// sent; null counts as not sent.
type flag struct{ sent, v bool }

// set reads f from a value.
func (f *flag) set(v hub.JSON) error {
	s := ""
	switch v.Kind() {
	case hub.JSONNull:
		s = "null"
	case hub.JSONBool:
		b, _ := v.Bool()
		s = strconv.FormatBool(b)
	case hub.JSONString:
		str, _ := v.Str()
		s = strings.ToLower(strings.TrimSpace(str))
	}
	switch s {
	case "null":
		*f = flag{}
	case "true", "false":
		*f = flag{sent: true, v: s == "true"}
	default:
		return typeError(v, reflect.TypeFor[bool]())
	}
	return nil
}

// unixTime is a timestamp sent as Unix seconds (a number, whole or with a
// fraction, or a string) or as an RFC 3339 string. Anything else, and times
// outside 1970–9999, read as the zero time: a bad timestamp only loses the
// timestamp, not the callback.
type unixTime struct{ time.Time }

// set reads u from a value; it never fails.
func (u *unixTime) set(v hub.JSON) error {
	u.Time = time.Time{}
	if s, ok := v.Str(); ok {
		u.Time = provider.ParseTime(s)
	} else if n, ok := v.Number(); ok {
		u.Time = provider.UnixTime(string(n))
	}
	return nil
}

// tags is a list of strings sent as an array (entries that are neither
// strings nor numbers are skipped), a single string, or null.
type tags []string

// set reads ts from a value; it never fails.
func (ts *tags) set(v hub.JSON) error {
	*ts = nil
	if s, ok := v.Str(); ok {
		*ts = tags{s}
	}
	for it := range v.Elems {
		var s text
		if s.set(it) == nil && s != "" {
			*ts = append(*ts, string(s))
		}
	}
	return nil
}

// typeError is the error for a value of the wrong JSON type: the one
// json.Unmarshal would give (fieldReader.read adds the field's path), which
// describe renders.
func typeError(v hub.JSON, t reflect.Type) error {
	var kind string
	switch v.Kind() {
	case hub.JSONObject:
		kind = "object"
	case hub.JSONArray:
		kind = "array"
	case hub.JSONBool:
		kind = "bool"
	case hub.JSONString:
		kind = "string"
	default:
		kind = "number"
	}
	return &json.UnmarshalTypeError{Value: kind, Type: t}
}

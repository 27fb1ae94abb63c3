// Package idenfy is verihook's adapter for iDenfy identity-verification
// (KYC) webhooks.
//
// # Authentication
//
// iDenfy signs every webhook with the Idenfy-Signature header: the hex
// HMAC-SHA256 of the raw body under a signing key set per webhook in the
// dashboard (Settings → Notifications). A source's secrets are:
//
//   - signing_key (required): the key of every webhook that has no key of its
//     own below;
//   - signing_keys.<EVENT_TYPE> (optional, any number): the key of the webhook
//     of that event type, for accounts that give each webhook its own key,
//     e.g. signing_keys.IDENTIFICATION_MANUAL_FINISHED. Event types match in
//     any of the spellings below.
//
// The key is chosen from the request's event type, before the body is read,
// so that the signature is checked over the raw bytes before anything in
// them is trusted. The event type is the one the ingest URL names
// (POST /ingest/{source_id}/{event_type}: give each iDenfy webhook its own
// URL), else the Verihook-Event-Type header (a custom header each webhook
// can carry), else Idenfy-Event-Type. When a request names none, or one no
// iDenfy document names, every configured key is tried in turn, each in
// constant time. A request without Idenfy-Signature is refused.
//
// # Events
//
// An event type is matched in any spelling iDenfy's documents use: the API
// names (IDENTIFICATION_AUTO_FINISHED), the dashboard's ("ID VERIFICATION
// AUTO FINISHED", "ID VERIFICATION AUTO FINISH"), ID_VERIFICATION_…, the
// OpenAPI operation names (identificationAutoFinished), and CANCELED or
// CANCELLED; case, spaces, hyphens and underscores do not matter. The event
// name kept (Parsed.EventName, provider_event) is the type as sent.
//
// Without an event type, or with one no document names, the body decides, as
// for the legacy IDENTIFICATION webhook that fires for every outcome:
// IDENTIFICATION_EXPIRED when status.overall is EXPIRED, else IDENTIFICATION
// (by the final flag, else the manual fields, and status.overall). An
// unnamed event type whose body has no status.overall, or is of another
// shape (the KYB, AML-monitoring and bank-check webhooks …), is quarantined,
// as is a callback without scanRef.
//
// Each identification callback reports one kyc observation of the
// verification named by scanRef (applicant: clientId; provider time:
// finishTime):
//
//	IDENTIFICATION_AUTO_FINISHED   final:true   by status.overall      final
//	IDENTIFICATION_AUTO_FINISHED   final:false  review                 not final
//	IDENTIFICATION_MANUAL_FINISHED              by status.overall      final (always)
//	IDENTIFICATION_EXPIRED                      expired                final
//	IDENTIFICATION_CANCELED/-LLED               canceled               final
//	IDENTIFICATION_RESUBMITTED     final:true   by status.overall,     final with a decision
//	                                            else review            (else not final)
//	IDENTIFICATION_RESUBMITTED     final:false  review                 not final
//	IDENTIFICATION                 final:true   by status.overall      final
//	IDENTIFICATION                 final:false  review                 not final
//
// where status.overall APPROVED, DENIED, SUSPECTED, EXPIRED, REVIEWING and
// NOT_REVIEWED map to approved, rejected, suspected, expired, review and
// review, and ACTIVE (an unused token, in the oldest documents) to pending;
// DELETED, ARCHIVED or any other overall, where it is needed, quarantines
// the callback. The reasons are status.fraudTags, status.mismatchTags and status.suspicionReasons, then the
// automatic and manual face and document results that are not FACE_MATCH or
// DOC_VALIDATED, without repeats.
//
// A final status is a decision: review and pending are never final,
// whatever the flag says.
//
// DOCUMENT_EXPIRATION ({scanRef, clientId, expirationThreshold,
// documentExpiration}, also recognized without a header by its
// expirationThreshold) becomes an applicant.document_expiration event; it
// changes no verification's status. So do AGE_ESTIMATION ({scanRef, status,
// occurredAt, outcome, verdict, estimatedAge, confidence, clientId}), which
// becomes applicant.age_estimated, and FACIAL_AUTHENTICATION ({token, type,
// method, facePhoto, ipAddress, failReason, riskTags}), which becomes
// applicant.face_authentication_ended (succeeded when there is no
// failReason; the photo link and the IP address are not carried). These two
// are recognized by their event type only.
//
// iDenfy sends no event id, and the automatic and the manual webhook of one
// verification share scanRef, so the dedup key is the canonical hash of the
// event name together with the decoded body: a retry of the same webhook is a
// duplicate, the next webhook about the same verification is not.
//
// Bodies are decoded leniently, as iDenfy's format changed over time: fields
// may be null; startTime and finishTime may be Unix seconds (a number, whole
// or with a fraction, or a string) at the top level or inside status; AML and LID may be arrays (current) or
// lower-case aml and lid objects (old); suspicionReasons (old) and
// fraudTags/mismatchTags (current) are all read.
//
// # Unconfirmed, and what is assumed
//
//   - The Idenfy-Event-Type values of the KYC webhooks are published only in
//     iDenfy's OpenAPI document (IDENTIFICATION_AUTO_FINISHED …,
//     DOCUMENT_EXPIRATION); its prose and the dashboard use other spellings,
//     all accepted. The legacy IDENTIFICATION webhook and old (2018–2020)
//     callbacks are assumed to come possibly without the header.
//   - Whether iDenfy omits Idenfy-Signature when a webhook has no signing key
//     is unconfirmed; verihook refuses unsigned requests, so every webhook must
//     be given a key at iDenfy.
//   - Whether iDenfy's retries are byte-identical is unconfirmed; the dedup key
//     ignores key order and spacing but not changed values.
//   - When a body has no final field (the old format), it is taken as final
//     when status.manualDocument or status.manualFace is set: iDenfy's old FAQ
//     says the manual-review callback is the last one and carries them.
//   - The status.overall sent with a CANCELLED webhook is unknown; Parse does
//     not read it, and Build sends DENIED.
package idenfy

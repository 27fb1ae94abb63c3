// Package kycaid is verihook's adapter for KYCAID (https://docs.kycaid.com/)
// verification callbacks.
//
// # Authentication
//
// KYCAID signs every callback with the header x-data-integrity: the lowercase
// hex HMAC-SHA512 of the base64 (standard alphabet, padded) encoding of the
// raw body, keyed with the account's API token. The source secret is
// therefore api_token, and rotating the API token in KYCAID's dashboard also
// rotates the callback key. The construction is confirmed by KYCAID's own
// test vector (see the tests). The header is compared in constant time;
// uppercase hex is accepted too.
//
// # Events
//
// Two callback types are documented and understood:
//
//   - VERIFICATION_STATUS_CHANGED, sent when the applicant submits a form
//     (it must be enabled per form in KYCAID's dashboard). Its
//     verification_status (unused, pending or completed) never carries a
//     decision, so it maps to pending, not final.
//   - VERIFICATION_COMPLETED, sent when KYCAID, a manager or a project member
//     sets the result. Its verified field maps true to approved (final),
//     false to rejected and null to pending (not final). A rejection is
//     final only when the applicant has no attempt left: the verification's
//     last known verification_attempts_left (this callback's, else the
//     latest one KYCAID sent) is 0 (hub.Observation.FinalIfNoAttempts).
//     While one is left, or the count is unknown or null ("not limited"),
//     the applicant may try again, and the new attempt's pending applies.
//     The schema calls
//     verified "string or null" while the example sends a JSON boolean, so
//     both the booleans and the strings "true" and "false" (any case) are
//     accepted; any other value quarantines the message.
//
// Type names are matched exactly as KYCAID spells them; any other type
// (including the dotted lowercase names one unreliable third-party guide
// invents) is quarantined, not dropped.
//
// Decoding is lenient: a field of an unexpected JSON type is treated as
// absent, except where the message cannot be mapped without it (type,
// verification_status, verified, and verification_id when applicant_id is
// absent too), which quarantines it.
//
// # What the observation holds
//
// ProviderRef is verification_id. The schema allows it to be null, which
// KYCAID sends before the verification exists (a form not yet submitted):
// the status is then kept against the applicant, under ProviderRef
// "applicant:" + applicant_id (ApplicantRefPrefix). Every callback that has
// both names the applicant's reference as its FormerRef, so the first one
// with a verification_id continues that verification, same id and timeline,
// which then takes the verification_id as its provider_ref (a change, with
// its verification.updated event). The applicant's next verification starts
// anew. ApplicantRef is the top-level
// external_applicant_id, else applicant.external_applicant_id (an empty
// string means none). Kind is kyb when applicant.type is COMPANY, else kyc;
// VERIFICATION_STATUS_CHANGED carries no applicant object, so it is always
// kyc. AttemptsLeft is verification_attempts_left (null, documented as
// "not limited", gives none), which the verification keeps as the latest
// figure sent. KYCAID sends no event timestamp
// (applicant.created_at is when the applicant was created, not when the
// event happened), so observations carry no provider time and the ordering
// rules fall back to arrival order.
//
// Reasons are the decline_reasons of every part under verifications, in
// part-name order, then applicant.decline_reasons, de-duplicated, strings kept
// as sent.
//
// # Unconfirmed facts and assumptions
//
//   - Only the verifications parts profile and document are confirmed; the
//     others (facial, address, aml, financial, video, company, mirroring the
//     verification types) are assumed to share their shape, so verifications
//     is read as a map of parts.
//   - The shape of a decline reason is not documented: the samples only show
//     empty lists. Next to decline_reasons the applicant holds
//     decline_reasons_ids, which suggests the reasons are human-readable
//     text. Strings are kept as sent; for an object the first non-empty
//     string field among name, code, reason, title, description, text and
//     message is taken, else its compact JSON.
//   - request_id is documented as "a unique identifier for a callback
//     request". Whether a retry of the same callback keeps it is
//     unconfirmed. It is the dedup key ("request_id:" + value) when present;
//     if KYCAID gives retries new ids, a retry is stored twice but, saying
//     the same thing, changes no verification's status. Without request_id
//     the dedup key is the hash of the canonical JSON content.
//   - KYCAID's retry schedule and timeout for KYC callbacks are not
//     documented.
//   - The fields of a COMPANY applicant are not documented; Build's company
//     applicant (company_name, registration_country) is a guess.
package kycaid

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
//     own below, and of every request without an Idenfy-Event-Type header;
//   - signing_keys.<EVENT_TYPE> (optional, any number): the key of the webhook
//     whose Idenfy-Event-Type header names EVENT_TYPE, for accounts that give
//     each webhook its own key, e.g. signing_keys.IDENTIFICATION_MANUAL_FINISHED.
//     Event types match case-insensitively and the CANCELED and CANCELLED
//     spellings name the same webhook.
//
// The key is chosen from the header alone, before the body is read, so that
// the signature is checked over the raw bytes before anything in them is
// trusted. A request without Idenfy-Signature is refused.
//
// # Events
//
// The event name is the Idenfy-Event-Type header as sent. Without the header
// it is derived from the body: IDENTIFICATION_EXPIRED when status.overall is
// EXPIRED, else the legacy IDENTIFICATION. The understood names are listed by
// [Provider.Events]; any other (FACIAL_AUTHENTICATION, AGE_ESTIMATION …) is
// quarantined, as is a callback without scanRef.
//
// Each understood callback reports one kyc observation of the verification
// named by scanRef (applicant: clientId; provider time: finishTime):
//
//	IDENTIFICATION_AUTO_FINISHED   final:true   by status.overall      final
//	IDENTIFICATION_AUTO_FINISHED   final:false  review                 not final
//	IDENTIFICATION_MANUAL_FINISHED              by status.overall      final (always)
//	IDENTIFICATION_EXPIRED                      expired                final
//	IDENTIFICATION_CANCELED/-LLED               canceled               final
//	IDENTIFICATION_RESUBMITTED                  review                 as sent
//	IDENTIFICATION                 final:true   by status.overall      final
//	IDENTIFICATION                 final:false  review                 not final
//
// where status.overall APPROVED, DENIED, SUSPECTED, EXPIRED and REVIEWING map
// to approved, rejected, suspected, expired and review; any other overall,
// where it is needed, quarantines the callback. The reasons are
// status.fraudTags, status.mismatchTags and status.suspicionReasons, then the
// automatic and manual face and document results that are not FACE_MATCH or
// DOC_VALIDATED, without repeats.
//
// iDenfy sends no event id, and the automatic and the manual webhook of one
// verification share scanRef, so the dedup key is the canonical hash of the
// event name together with the decoded body: a retry of the same webhook is a
// duplicate, the next webhook about the same verification is not.
//
// Bodies are decoded leniently, as iDenfy's format changed over time: fields
// may be null; startTime and finishTime may be Unix seconds (number or string)
// at the top level or inside status; AML and LID may be arrays (current) or
// lower-case aml and lid objects (old); suspicionReasons (old) and
// fraudTags/mismatchTags (current) are all read.
//
// # Unconfirmed, and what is assumed
//
//   - The Idenfy-Event-Type values of the KYC webhooks are not published (only
//     FACIAL_AUTHENTICATION, AGE_ESTIMATION and COMPANY_INFO_REQUEST are). They
//     are assumed to be the webhook names of iDenfy's API documents
//     (IDENTIFICATION_AUTO_FINISHED …), with either spelling of CANCELLED, and
//     the legacy IDENTIFICATION webhook is assumed to come possibly without the
//     header.
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

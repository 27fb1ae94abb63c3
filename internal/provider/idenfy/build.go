package idenfy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// Defaults of a built callback.
const (
	// DefaultScanRef is the scanRef of a built callback without Fields.Ref.
	DefaultScanRef = "3f2b9c4e-8a1d-11f0-9c1b-0242ac120002"
	// DefaultClientID is the clientId of a built callback without
	// Fields.ApplicantRef.
	DefaultClientID = "user-48213"
)

// defaultFinish is the finishTime of a built callback without Fields.Time.
var defaultFinish = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// Build returns the body iDenfy sends for event, shaped like a real
// identification webhook, and its headers: Content-Type and, except for the
// legacy IDENTIFICATION webhook, Idenfy-Event-Type. It reads Fields.Ref
// (scanRef), ApplicantRef (clientId), Status (status.overall: APPROVED,
// DENIED, SUSPECTED, EXPIRED, REVIEWING, NOT_REVIEWED or ACTIVE; by default EXPIRED for the EXPIRED
// webhook, DENIED for the CANCELLED one, APPROVED otherwise), Final (default
// true; false makes a preliminary result), Time (finishTime; default
// 2026-11-24T12:00:00Z) and Reasons (status.fraudTags; a SUSPECTED result
// without them carries the fraud tag DUPLICATE_FACE and the mismatch tag
// NAME). DOCUMENT_EXPIRATION reads Ref, ApplicantRef and Status (its
// expirationThreshold; default DOCUMENT_EXPIRES_WITHIN_30_DAYS);
// AGE_ESTIMATION reads Ref, ApplicantRef, Status (its outcome; default
// SUCCESS) and Time; FACIAL_AUTHENTICATION reads Ref (its token) and
// Reasons[0] (its failReason: a failed session). The output
// depends on event and f alone. It returns an EINVALID *hub.Error for an
// unknown event or status.
func (Provider) Build(event string, f provider.Fields) ([]byte, http.Header, error) {
	event, err := provider.MatchEvent(events, event)
	if err != nil {
		return nil, nil, err
	}
	canon := canonicalEvent(event)
	switch canon {
	case EventDocumentExpiration:
		return buildDocumentExpiration(f)
	case EventAgeEstimation:
		return buildAgeEstimation(f)
	case EventFacialAuthentication:
		return buildFacialAuthentication(f)
	}
	overall := strings.ToUpper(strings.TrimSpace(f.Status))
	if overall == "" {
		switch canon {
		case EventExpired:
			overall = "EXPIRED"
		case EventCancelled:
			overall = "DENIED"
		default:
			overall = "APPROVED"
		}
	}
	if _, ok := overallStatus[overall]; !ok {
		return nil, nil, hub.Errorf(hub.EINVALID, "unknown iDenfy status %q (known: APPROVED, DENIED, SUSPECTED, EXPIRED, REVIEWING, NOT_REVIEWED, ACTIVE)", f.Status)
	}
	final := true
	if f.Final != nil {
		final = *f.Final
	}
	finish := defaultFinish
	if !f.Time.IsZero() {
		finish = f.Time.UTC()
	}
	scanRef := provider.Or(f.Ref, DefaultScanRef)
	clientID := provider.Or(f.ApplicantRef, DefaultClientID)

	// An identification that expired or was canceled never got to capture a
	// document; a preliminary or automatic one has no manual review yet.
	captured := canon != EventExpired && canon != EventCancelled && overall != "EXPIRED"
	reviewed := captured && final && canon != EventAutoFinished

	cb := wireCallback{
		ClientID:        clientID,
		ScanRef:         scanRef,
		ExternalRef:     "kyc-" + clientID,
		Platform:        "MOBILE_APP",
		StartTime:       finish.Unix() - 42,
		FinishTime:      finish.Unix(),
		ClientIP:        "203.0.113.24",
		ClientIPCountry: "LT",
		ClientLocation:  "Vilnius, Lithuania",
		Final:           final,
		Status: wireStatus{
			Overall: overall, SuspicionReasons: []string{}, MismatchTags: []string{}, FraudTags: []string{},
		},
		Data:                  emptyData(),
		FileURLs:              wireFiles{},
		AdditionalStepPdfURLs: map[string]string{},
		AML:                   []wireService{},
		LID:                   []wireService{},
	}
	if len(f.Reasons) > 0 {
		cb.Status.FraudTags = append(cb.Status.FraudTags, f.Reasons...)
	} else if overall == "SUSPECTED" {
		cb.Status.FraudTags = []string{"DUPLICATE_FACE"}
		cb.Status.MismatchTags = []string{"NAME"}
	}
	if captured {
		face := "FACE_MATCH"
		if overall == "DENIED" {
			face = "FACE_MISMATCH"
		}
		cb.Status.AutoDocument, cb.Status.AutoFace = ptr("DOC_VALIDATED"), ptr(face)
		if reviewed {
			cb.Status.ManualDocument, cb.Status.ManualFace = ptr("DOC_VALIDATED"), ptr(face)
		}
		cb.Data = capturedData()
		sum := sha256.Sum256([]byte(scanRef))
		folder := hex.EncodeToString(sum[:16])
		for side, url := range map[string]**string{"FRONT": &cb.FileURLs.Front, "BACK": &cb.FileURLs.Back, "FACE": &cb.FileURLs.Face} {
			*url = ptr("https://s3.eu-west-1.amazonaws.com/production.users.storage/users_storage/users/" +
				folder + "/" + side + ".png?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=c2ltdWxhdGVkLXNpZ25hdHVyZQ%3D%3D&Expires=" +
				strconv.FormatInt(finish.Unix()+3600, 10))
		}
		uid := strings.ToUpper(folder[:25])
		cb.AML = []wireService{service("PilotApiAmlV2", "AML", uid)}
		cb.LID = []wireService{service("IrdInvalidPapers", "LID", uid)}
	}

	if canon == EventIdentification {
		event = ""
	}
	return encode(cb, event)
}

// expirationThresholds are the expirationThreshold values iDenfy documents.
var expirationThresholds = []string{"DOCUMENT_EXPIRES_WITHIN_30_DAYS", "DOCUMENT_EXPIRES_WITHIN_7_DAYS",
	"DOCUMENT_EXPIRES_WITHIN_1_DAY", "DOCUMENT_EXPIRED"}

// buildDocumentExpiration builds a DOCUMENT_EXPIRATION webhook.
func buildDocumentExpiration(f provider.Fields) ([]byte, http.Header, error) {
	threshold, err := provider.MatchEvent(expirationThresholds, provider.Or(f.Status, expirationThresholds[0]))
	if err != nil {
		return nil, nil, hub.Errorf(hub.EINVALID, "unknown expirationThreshold %q (known: %s)", f.Status, strings.Join(expirationThresholds, ", "))
	}
	return encode(struct {
		ScanRef             string `json:"scanRef"`
		ClientID            string `json:"clientId"`
		ExpirationThreshold string `json:"expirationThreshold"`
		DocumentExpiration  string `json:"documentExpiration"`
	}{provider.Or(f.Ref, DefaultScanRef), provider.Or(f.ApplicantRef, DefaultClientID), threshold, "2031-05-14"}, EventDocumentExpiration)
}

// buildAgeEstimation builds an AGE_ESTIMATION webhook: completed with the
// outcome f.Status, or failed when that is ATTEMPTS_EXCEEDED.
func buildAgeEstimation(f provider.Fields) ([]byte, http.Header, error) {
	outcome := strings.ToUpper(provider.Or(f.Status, "SUCCESS"))
	status := "COMPLETED"
	if outcome == "ATTEMPTS_EXCEEDED" {
		status = "FAILED"
	}
	occurred := defaultFinish
	if !f.Time.IsZero() {
		occurred = f.Time.UTC()
	}
	return encode(struct {
		ScanRef      string  `json:"scanRef"`
		Status       string  `json:"status"`
		OccurredAt   string  `json:"occurredAt"`
		Outcome      string  `json:"outcome"`
		Verdict      string  `json:"verdict"`
		EstimatedAge int     `json:"estimatedAge"`
		Confidence   float64 `json:"confidence"`
		ClientID     string  `json:"clientId"`
	}{provider.Or(f.Ref, DefaultScanRef), status, occurred.Format(time.RFC3339), outcome, "ADULT", 34, 0.91,
		provider.Or(f.ApplicantRef, DefaultClientID)}, EventAgeEstimation)
}

// buildFacialAuthentication builds a FACIAL_AUTHENTICATION webhook.
func buildFacialAuthentication(f provider.Fields) ([]byte, http.Header, error) {
	var failReason *string
	if len(f.Reasons) > 0 {
		failReason = &f.Reasons[0]
	}
	token := provider.Or(f.Ref, "Fh3kQ9zLr2Vb7xTn5WcY8pDs1JmA6eGu4HoZ0iKq")
	return encode(struct {
		Token      string   `json:"token"`
		Type       string   `json:"type"`
		Method     string   `json:"method"`
		FacePhoto  string   `json:"facePhoto"`
		IPAddress  string   `json:"ipAddress"`
		FailReason *string  `json:"failReason"`
		RiskTags   []string `json:"riskTags"`
	}{token, "AUTHENTICATION", "FACE_MATCHING",
		"https://s3.eu-west-1.amazonaws.com/production.users.storage/face-auth/" + token + "/FACE.png",
		"203.0.113.24", failReason, []string{}}, EventFacialAuthentication)
}

// encode renders a webhook body as iDenfy does, with Content-Type and, when
// event is not empty, Idenfy-Event-Type.
func encode(v any, event string) ([]byte, http.Header, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // iDenfy's pre-signed URLs carry a plain &
	if err := enc.Encode(v); err != nil {
		return nil, nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if event != "" {
		h.Set(HeaderEventType, event)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), h, nil
}

func ptr(s string) *string { return &s }

// wireCallback is an identification webhook as Build writes it, fields in
// the order of the sample in iDenfy's Go client tests.
type wireCallback struct {
	ClientID              string            `json:"clientId"`
	ScanRef               string            `json:"scanRef"`
	ExternalRef           string            `json:"externalRef"`
	Platform              string            `json:"platform"`
	StartTime             int64             `json:"startTime"`
	FinishTime            int64             `json:"finishTime"`
	ClientIP              string            `json:"clientIp"`
	ClientIPCountry       string            `json:"clientIpCountry"`
	ClientLocation        string            `json:"clientLocation"`
	Final                 bool              `json:"final"`
	Status                wireStatus        `json:"status"`
	Data                  wireData          `json:"data"`
	FileURLs              wireFiles         `json:"fileUrls"`
	AdditionalStepPdfURLs map[string]string `json:"additionalStepPdfUrls"`
	AML                   []wireService     `json:"AML"`
	LID                   []wireService     `json:"LID"`
}

type wireFiles struct {
	Front *string `json:"FRONT"`
	Back  *string `json:"BACK"`
	Face  *string `json:"FACE"`
}

type wireStatus struct {
	Overall          string   `json:"overall"`
	SuspicionReasons []string `json:"suspicionReasons"`
	MismatchTags     []string `json:"mismatchTags"`
	FraudTags        []string `json:"fraudTags"`
	AutoDocument     *string  `json:"autoDocument"`
	AutoFace         *string  `json:"autoFace"`
	ManualDocument   *string  `json:"manualDocument"`
	ManualFace       *string  `json:"manualFace"`
	AdditionalSteps  *string  `json:"additionalSteps"`
}

type wireData struct {
	DocFirstName           *string        `json:"docFirstName"`
	DocLastName            *string        `json:"docLastName"`
	DocNumber              *string        `json:"docNumber"`
	DocPersonalCode        *string        `json:"docPersonalCode"`
	DocExpiry              *string        `json:"docExpiry"`
	DocDob                 *string        `json:"docDob"`
	DocDateOfIssue         *string        `json:"docDateOfIssue"`
	DocType                *string        `json:"docType"`
	DocSex                 *string        `json:"docSex"`
	DocNationality         *string        `json:"docNationality"`
	DocIssuingCountry      *string        `json:"docIssuingCountry"`
	DocTemporaryAddress    *string        `json:"docTemporaryAddress"`
	DocBirthName           *string        `json:"docBirthName"`
	BirthPlace             *string        `json:"birthPlace"`
	Authority              *string        `json:"authority"`
	Address                *string        `json:"address"`
	FullName               *string        `json:"fullName"`
	SelectedCountry        *string        `json:"selectedCountry"`
	MothersMaidenName      *string        `json:"mothersMaidenName"`
	DriverLicenseCategory  *string        `json:"driverLicenseCategory"`
	ManuallyDataChanged    bool           `json:"manuallyDataChanged"`
	OrgFirstName           *string        `json:"orgFirstName"`
	OrgLastName            *string        `json:"orgLastName"`
	OrgNationality         *string        `json:"orgNationality"`
	OrgBirthPlace          *string        `json:"orgBirthPlace"`
	OrgAuthority           *string        `json:"orgAuthority"`
	OrgAddress             *string        `json:"orgAddress"`
	OrgTemporaryAddress    *string        `json:"orgTemporaryAddress"`
	OrgMothersMaidenName   *string        `json:"orgMothersMaidenName"`
	OrgBirthName           *string        `json:"orgBirthName"`
	AgeEstimate            *string        `json:"ageEstimate"`
	ClientIPProxyRiskLevel *string        `json:"clientIpProxyRiskLevel"`
	DuplicateDocFaces      []string       `json:"duplicateDocFaces"`
	DuplicateFaces         []string       `json:"duplicateFaces"`
	AdditionalData         map[string]any `json:"additionalData"`
	ManualAddress          *string        `json:"manualAddress"`
	ManualAddressMatch     bool           `json:"manualAddressMatch"`
	RegistryCenterCheck    *string        `json:"registryCenterCheck"`
	AddressVerification    *string        `json:"addressVerification"`
}

// emptyData is the data of an identification that captured no document.
func emptyData() wireData {
	return wireData{AdditionalData: map[string]any{}}
}

// capturedData is the data read from a fake Lithuanian identity card.
func capturedData() wireData {
	return wireData{
		DocFirstName:           ptr("JONAS"),
		DocLastName:            ptr("PETRAITIS"),
		DocNumber:              ptr("38912345"),
		DocPersonalCode:        ptr("39003151234"),
		DocExpiry:              ptr("2031-05-14"),
		DocDob:                 ptr("1990-03-15"),
		DocDateOfIssue:         ptr("2021-05-14"),
		DocType:                ptr("ID_CARD"),
		DocSex:                 ptr("MALE"),
		DocNationality:         ptr("LT"),
		DocIssuingCountry:      ptr("LT"),
		BirthPlace:             ptr("KAUNAS"),
		Authority:              ptr("LIETUVOS RESPUBLIKOS VRM"),
		Address:                ptr("GEDIMINO PR. 1-1, VILNIUS"),
		FullName:               ptr("JONAS PETRAITIS"),
		SelectedCountry:        ptr("LT"),
		OrgFirstName:           ptr("JONAS"),
		OrgLastName:            ptr("PETRAITIS"),
		OrgNationality:         ptr("LIETUVOS"),
		OrgBirthPlace:          ptr("KAUNAS"),
		AgeEstimate:            ptr("OVER_25"),
		ClientIPProxyRiskLevel: ptr("LOW"),
		AdditionalData:         map[string]any{},
	}
}

type wireService struct {
	Status           wireServiceStatus `json:"status"`
	Data             []any             `json:"data"`
	ServiceName      string            `json:"serviceName"`
	ServiceGroupType string            `json:"serviceGroupType"`
	UID              string            `json:"uid"`
	ErrorMessage     *string           `json:"errorMessage"`
}

type wireServiceStatus struct {
	ServiceSuspected bool   `json:"serviceSuspected"`
	CheckSuccessful  bool   `json:"checkSuccessful"`
	ServiceFound     bool   `json:"serviceFound"`
	ServiceUsed      bool   `json:"serviceUsed"`
	OverallStatus    string `json:"overallStatus"`
}

// service is an AML or LID check that found nothing.
func service(name, group, uid string) wireService {
	return wireService{
		Status: wireServiceStatus{
			CheckSuccessful: true, ServiceFound: true, ServiceUsed: true, OverallStatus: "NOT_SUSPECTED",
		},
		Data: []any{}, ServiceName: name, ServiceGroupType: group, UID: uid,
	}
}

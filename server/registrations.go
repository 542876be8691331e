package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"

	ltikeysv1 "github.com/ltikeys/ltikeys/gen/ltikeys/v1"
	"github.com/ltikeys/ltikeys/storage"
)

// Page sizes of the List methods.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// GetRegistration implements ltikeysv1.KeyServiceServer.
func (s *KeyService) GetRegistration(ctx context.Context, req *ltikeysv1.GetRegistrationRequest) (*ltikeysv1.GetRegistrationResponse, error) {
	var v violations
	id := canonicalRegistrationID(req.GetId())
	v.requireUUID("id", id)
	if err := v.err(); err != nil {
		return nil, err
	}
	reg, err := s.store.GetRegistration(ctx, id)
	if err != nil {
		return nil, s.registrationError(ctx, "GetRegistration", err, id)
	}
	return &ltikeysv1.GetRegistrationResponse{Registration: s.registrationProto(reg, s.now())}, nil
}

// ListRegistrations implements ltikeysv1.KeyServiceServer.
func (s *KeyService) ListRegistrations(ctx context.Context, req *ltikeysv1.ListRegistrationsRequest) (*ltikeysv1.ListRegistrationsResponse, error) {
	var v violations
	if req.GetIssuer() != "" {
		v.requireText("issuer", req.GetIssuer(), maxFieldLen)
	}
	size := v.pageSize("page_size", req.GetPageSize())
	after := v.pageToken("page_token", req.GetPageToken(), "issuer="+req.GetIssuer())
	if err := v.err(); err != nil {
		return nil, err
	}
	regs, err := s.store.ListRegistrations(ctx, storage.RegistrationQuery{Issuer: req.GetIssuer(), AfterID: after, Limit: size + 1})
	if err != nil {
		return nil, s.storeError(ctx, "ListRegistrations", err)
	}
	resp := &ltikeysv1.ListRegistrationsResponse{}
	if len(regs) > size {
		regs = regs[:size]
		resp.NextPageToken = encodePageToken(regs[size-1].ID, "issuer="+req.GetIssuer())
	}
	now := s.now()
	for _, r := range regs {
		resp.Registrations = append(resp.Registrations, s.registrationProto(r, now))
	}
	return resp, nil
}

// defaultUpdateFields are the UpdateRegistration mask paths an empty mask
// stands for: the endpoints. deploymentIDsPath, the other path it
// accepts, must be named.
var defaultUpdateFields = []string{"auth_endpoint", "jwks_uri", "token_endpoint"}

// deploymentIDsPath is the UpdateRegistration mask path of the deployment
// ids.
const deploymentIDsPath = "deployment_ids"

// UpdateRegistration implements ltikeysv1.KeyServiceServer.
func (s *KeyService) UpdateRegistration(ctx context.Context, req *ltikeysv1.UpdateRegistrationRequest) (*ltikeysv1.UpdateRegistrationResponse, error) {
	var v violations
	in := req.GetRegistration()
	id := canonicalRegistrationID(in.GetId())
	v.requireUUID("registration.id", id)
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		paths = defaultUpdateFields
	}
	set := map[string]string{}
	var (
		setDeploymentIDs bool
		deploymentIDs    []string
	)
	for _, p := range paths {
		var value string
		switch p {
		case "auth_endpoint":
			value = in.GetAuthEndpoint()
		case "jwks_uri":
			value = in.GetJwksUri()
		case "token_endpoint":
			value = in.GetTokenEndpoint()
		case deploymentIDsPath:
			if !setDeploymentIDs {
				v.deploymentIDs("registration.deployment_ids", in.GetDeploymentIds())
			}
			setDeploymentIDs, deploymentIDs = true, slices.Clone(in.GetDeploymentIds())
			continue
		default:
			v.add("update_mask", "path %q cannot be updated: only auth_endpoint, jwks_uri, token_endpoint and deployment_ids", p)
			continue
		}
		v.requireEndpoint("registration."+p, value)
		set[p] = value
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	reg, err := s.store.UpdateRegistration(ctx, id, func(r storage.Registration) (storage.Registration, error) {
		for p, value := range set {
			switch p {
			case "auth_endpoint":
				r.AuthEndpoint = value
			case "jwks_uri":
				r.JWKSURI = value
			case "token_endpoint":
				r.TokenEndpoint = value
			}
		}
		if setDeploymentIDs {
			r.DeploymentIDs = deploymentIDs
		}
		return r, nil
	})
	if err != nil {
		return nil, s.registrationError(ctx, "UpdateRegistration", err, id)
	}
	s.keysChanged(ctx)
	s.platformTokens.Invalidate(id)
	s.log.InfoContext(ctx, "registration updated", "registration_id", id, "fields", paths)
	return &ltikeysv1.UpdateRegistrationResponse{Registration: s.registrationProto(reg, s.now())}, nil
}

// DeleteRegistration implements ltikeysv1.KeyServiceServer.
func (s *KeyService) DeleteRegistration(ctx context.Context, req *ltikeysv1.DeleteRegistrationRequest) (*ltikeysv1.DeleteRegistrationResponse, error) {
	var v violations
	id := canonicalRegistrationID(req.GetId())
	v.requireUUID("id", id)
	if err := v.err(); err != nil {
		return nil, err
	}
	keys, err := s.store.DeleteRegistration(ctx, id)
	if err != nil {
		return nil, s.registrationError(ctx, "DeleteRegistration", err, id)
	}
	// The response names no registration: only its keys.
	auditRegistration(ctx, id)
	s.keysChanged(ctx)
	s.platformTokens.Invalidate(id)
	s.log.InfoContext(ctx, "registration deleted", "registration_id", id, "keys", len(keys))
	resp := &ltikeysv1.DeleteRegistrationResponse{}
	now := s.now()
	for _, k := range keys {
		resp.RetiredKeys = append(resp.RetiredKeys, keyProto(k, now))
	}
	return resp, nil
}

// apiKeyStates maps the API's states to storage's.
var apiKeyStates = map[ltikeysv1.KeyState]storage.KeyState{
	ltikeysv1.KeyState_KEY_STATE_UNSPECIFIED: storage.KeyStateUnspecified,
	ltikeysv1.KeyState_KEY_STATE_PENDING:     storage.KeyPending,
	ltikeysv1.KeyState_KEY_STATE_CURRENT:     storage.KeyCurrent,
	ltikeysv1.KeyState_KEY_STATE_PREVIOUS:    storage.KeyPrevious,
	ltikeysv1.KeyState_KEY_STATE_RETIRED:     storage.KeyRetired,
}

// ListKeys implements ltikeysv1.KeyServiceServer.
func (s *KeyService) ListKeys(ctx context.Context, req *ltikeysv1.ListKeysRequest) (*ltikeysv1.ListKeysResponse, error) {
	var v violations
	regID := canonicalRegistrationID(req.GetRegistrationId())
	if regID != "" {
		v.requireUUID("registration_id", regID)
	}
	state, ok := apiKeyStates[req.GetState()]
	if !ok {
		v.add("state", "unknown state %d", req.GetState())
	}
	size := v.pageSize("page_size", req.GetPageSize())
	filter := "registration_id=" + regID + "&state=" + req.GetState().String()
	var after int64
	if tok := v.pageToken("page_token", req.GetPageToken(), filter); tok != "" {
		var err error
		if after, err = strconv.ParseInt(tok, 10, 64); err != nil {
			v.add("page_token", "not a token of this listing")
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	now := s.now()
	keys, err := s.store.ListKeys(ctx, storage.KeyQuery{
		RegistrationID: regID, State: state, Now: now, AfterSeq: after, Limit: size + 1,
	})
	if err != nil {
		return nil, s.storeError(ctx, "ListKeys", err)
	}
	resp := &ltikeysv1.ListKeysResponse{}
	if len(keys) > size {
		keys = keys[:size]
		resp.NextPageToken = encodePageToken(strconv.FormatInt(keys[size-1].Seq, 10), filter)
	}
	for _, k := range keys {
		resp.Keys = append(resp.Keys, keyProto(k, now))
	}
	return resp, nil
}

// pageSize checks a page size: 0 means the default, larger than the
// maximum means the maximum.
func (v *violations) pageSize(field string, n int32) int {
	switch {
	case n < 0:
		v.add(field, "must not be negative")
	case n == 0:
		return defaultPageSize
	}
	return min(int(n), maxPageSize)
}

// pageToken is the cursor behind a page token: the last item of the
// previous page, and the filter it was listed with, which the next request
// must repeat.
type pageToken struct {
	After  string `json:"a"`
	Filter string `json:"f"`
}

// encodePageToken returns the opaque token of a cursor.
func encodePageToken(after, filter string) string {
	b, _ := json.Marshal(pageToken{After: after, Filter: filter}) // strings always marshal
	return base64.RawURLEncoding.EncodeToString(b)
}

// pageToken decodes a page token, which must carry filter; "" for none.
func (v *violations) pageToken(field, token, filter string) string {
	if token == "" {
		return ""
	}
	var t pageToken
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	switch {
	case err != nil || t.After == "":
		v.add(field, "not a page token of this method")
	case t.Filter != filter:
		v.add(field, "the token is from a listing with other filters: repeat them, or start again without a token")
	}
	return t.After
}

--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: lti_jwks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.lti_jwks (
    id bigint NOT NULL,
    kid character varying(255) NOT NULL,
    alg character varying(16) NOT NULL,
    registration_id character varying(36) NOT NULL,
    public_jwk text NOT NULL,
    private_jwk bytea NOT NULL,
    active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    activates_at timestamp with time zone,
    superseded_at timestamp with time zone,
    retire_at timestamp with time zone,
    retired_at timestamp with time zone
);


--
-- Name: lti_jwks_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.lti_jwks_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: lti_jwks_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.lti_jwks_id_seq OWNED BY public.lti_jwks.id;


--
-- Name: ltikeys_changes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ltikeys_changes (
    id bigint NOT NULL,
    version bigint DEFAULT 0 NOT NULL
);


--
-- Name: ltikeys_schema; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ltikeys_schema (
    id bigint NOT NULL,
    version bigint NOT NULL
);


--
-- Name: platform_registrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.platform_registrations (
    id character varying(36) NOT NULL,
    issuer character varying(255) NOT NULL,
    client_id character varying(255) NOT NULL,
    auth_endpoint text NOT NULL,
    jwks_uri text NOT NULL,
    token_endpoint text NOT NULL,
    jwk_id bigint NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    pending_jwk_id bigint,
    deleted_at timestamp with time zone
);


--
-- Name: lti_jwks id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.lti_jwks ALTER COLUMN id SET DEFAULT nextval('public.lti_jwks_id_seq'::regclass);


--
-- Data for Name: lti_jwks; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.lti_jwks (id, kid, alg, registration_id, public_jwk, private_jwk, active, created_at, updated_at, activates_at, superseded_at, retire_at, retired_at) VALUES (5, 'kid-f-01', 'RS256', '0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01', '{"kty":"RSA","n":"AQABf","e":"AQAB"}', '\x0100fffe058078', true, '2026-11-20 09:30:21.123456+00', '2026-11-20 09:30:21.123456+00', '2026-11-20 09:30:21.123456+00', NULL, NULL, NULL);
INSERT INTO public.lti_jwks (id, kid, alg, registration_id, public_jwk, private_jwk, active, created_at, updated_at, activates_at, superseded_at, retire_at, retired_at) VALUES (1, 'kid-b-01', 'RS256', '0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01', '{"kty":"RSA","n":"AQABb","e":"AQAB"}', '\x0100fffe018078', true, '2026-11-20 09:30:15.123456+00', '2026-11-20 09:30:21.123456+00', '2026-11-20 09:30:15.123456+00', '2026-11-20 09:30:21.123456+00', '2026-11-22 09:30:21.123456+00', NULL);
INSERT INTO public.lti_jwks (id, kid, alg, registration_id, public_jwk, private_jwk, active, created_at, updated_at, activates_at, superseded_at, retire_at, retired_at) VALUES (6, 'kid-g-02', 'RS256', '0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e02', '{"kty":"RSA","n":"AQABg","e":"AQAB"}', '\x0100fffe068078', true, '2026-11-20 09:31:21.123463+00', '2026-11-20 09:31:21.123463+00', '2026-11-21 09:31:21.123463+00', NULL, NULL, NULL);
INSERT INTO public.lti_jwks (id, kid, alg, registration_id, public_jwk, private_jwk, active, created_at, updated_at, activates_at, superseded_at, retire_at, retired_at) VALUES (2, 'kid-c-02', 'RS256', '0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e02', '{"kty":"RSA","n":"AQABc","e":"AQAB"}', '\x0100fffe028078', true, '2026-11-20 09:30:16.623456+00', '2026-11-20 09:31:21.123463+00', '2026-11-20 09:30:16.623456+00', '2026-11-21 09:31:21.123463+00', '2026-11-23 09:31:21.123463+00', NULL);
INSERT INTO public.lti_jwks (id, kid, alg, registration_id, public_jwk, private_jwk, active, created_at, updated_at, activates_at, superseded_at, retire_at, retired_at) VALUES (7, 'kid-h-03', 'RS256', '0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e03', '{"kty":"RSA","n":"AQABh","e":"AQAB"}', '\x0100fffe078078', true, '2026-11-20 10:31:21.123463+00', '2026-11-20 10:31:21.123463+00', '2026-11-20 10:31:21.123463+00', NULL, NULL, NULL);
INSERT INTO public.lti_jwks (id, kid, alg, registration_id, public_jwk, private_jwk, active, created_at, updated_at, activates_at, superseded_at, retire_at, retired_at) VALUES (3, 'kid-d-03', 'RS256', '0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e03', '{"kty":"RSA","n":"AQABd","e":"AQAB"}', '\x0100fffe038078', false, '2026-11-20 09:30:18.123456+00', '2026-11-20 10:31:22.123463+00', '2026-11-20 09:30:18.123456+00', '2026-11-20 10:31:21.123463+00', NULL, '2026-11-20 10:31:22.123463+00');
INSERT INTO public.lti_jwks (id, kid, alg, registration_id, public_jwk, private_jwk, active, created_at, updated_at, activates_at, superseded_at, retire_at, retired_at) VALUES (4, 'kid-e-04', 'RS256', '0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e04', '{"kty":"RSA","n":"AQABe","e":"AQAB"}', '\x0100fffe048078', false, '2026-11-20 09:30:19.623456+00', '2026-11-20 10:31:23.123463+00', '2026-11-20 09:30:19.623456+00', NULL, NULL, '2026-11-20 10:31:23.123463+00');


--
-- Data for Name: ltikeys_changes; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ltikeys_changes (id, version) VALUES (1, 10);


--
-- Data for Name: ltikeys_schema; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ltikeys_schema (id, version) VALUES (1, 1);


--
-- Data for Name: platform_registrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.platform_registrations (id, issuer, client_id, auth_endpoint, jwks_uri, token_endpoint, jwk_id, created_at, updated_at, pending_jwk_id, deleted_at) VALUES ('0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e02', 'https://platform2.example', 'client-2', 'https://platform.example/auth', 'https://platform.example/jwks', 'https://platform.example/token', 2, '2026-11-20 09:30:16.623456+00', '2026-11-20 09:31:21.123463+00', 6, NULL);
INSERT INTO public.platform_registrations (id, issuer, client_id, auth_endpoint, jwks_uri, token_endpoint, jwk_id, created_at, updated_at, pending_jwk_id, deleted_at) VALUES ('0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e03', 'https://platform3.example', 'client-3', 'https://platform.example/auth', 'https://platform.example/jwks', 'https://platform.example/token', 7, '2026-11-20 09:30:18.123456+00', '2026-11-20 10:31:21.123463+00', NULL, NULL);
INSERT INTO public.platform_registrations (id, issuer, client_id, auth_endpoint, jwks_uri, token_endpoint, jwk_id, created_at, updated_at, pending_jwk_id, deleted_at) VALUES ('0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e04', 'https://platform4.example', 'client-4', 'https://platform.example/auth', 'https://platform.example/jwks', 'https://platform.example/token', 4, '2026-11-20 09:30:19.623456+00', '2026-11-20 10:31:23.123463+00', NULL, '2026-11-20 10:31:23.123463+00');
INSERT INTO public.platform_registrations (id, issuer, client_id, auth_endpoint, jwks_uri, token_endpoint, jwk_id, created_at, updated_at, pending_jwk_id, deleted_at) VALUES ('0199b7f0-5a8e-7c4e-9d1a-3f2b6c8d9e01', 'https://platform1.example', 'client-1', 'https://platform.example/auth', 'https://platform1.example/keys', 'https://platform.example/token', 5, '2026-11-20 09:30:15.123456+00', '2026-11-20 10:31:23.123463+00', NULL, NULL);


--
-- Name: lti_jwks_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.lti_jwks_id_seq', 7, true);


--
-- Name: lti_jwks lti_jwks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.lti_jwks
    ADD CONSTRAINT lti_jwks_pkey PRIMARY KEY (id);


--
-- Name: ltikeys_changes ltikeys_changes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ltikeys_changes
    ADD CONSTRAINT ltikeys_changes_pkey PRIMARY KEY (id);


--
-- Name: ltikeys_schema ltikeys_schema_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ltikeys_schema
    ADD CONSTRAINT ltikeys_schema_pkey PRIMARY KEY (id);


--
-- Name: platform_registrations platform_registrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.platform_registrations
    ADD CONSTRAINT platform_registrations_pkey PRIMARY KEY (id);


--
-- Name: idx_lti_jwks_kid; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX idx_lti_jwks_kid ON public.lti_jwks USING btree (kid);


--
-- Name: idx_lti_jwks_registration_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_lti_jwks_registration_id ON public.lti_jwks USING btree (registration_id);


--
-- Name: idx_lti_jwks_retire_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_lti_jwks_retire_at ON public.lti_jwks USING btree (retire_at);


--
-- Name: idx_platform_registrations_jwk_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_platform_registrations_jwk_id ON public.platform_registrations USING btree (jwk_id);


--
-- Name: idx_platform_registrations_live_issuer_client_id; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX idx_platform_registrations_live_issuer_client_id ON public.platform_registrations USING btree (issuer, client_id) WHERE (deleted_at IS NULL);


--
-- Name: idx_platform_registrations_pending_jwk_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_platform_registrations_pending_jwk_id ON public.platform_registrations USING btree (pending_jwk_id);


--
-- Name: platform_registrations fk_platform_registrations_jwk; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.platform_registrations
    ADD CONSTRAINT fk_platform_registrations_jwk FOREIGN KEY (jwk_id) REFERENCES public.lti_jwks(id) ON UPDATE RESTRICT ON DELETE RESTRICT;


--
-- PostgreSQL database dump complete
--

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



--
-- Data for Name: ltikeys_changes; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ltikeys_changes (id, version) VALUES (1, 0);


--
-- Data for Name: ltikeys_schema; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ltikeys_schema (id, version) VALUES (1, 1);


--
-- Data for Name: platform_registrations; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Name: lti_jwks_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.lti_jwks_id_seq', 1, false);


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

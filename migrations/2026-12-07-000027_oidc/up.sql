-- Sign-in through OpenID Connect providers: the logins under way (between
-- StartOidcLogin and FinishOidcLogin) and which provider identity is which
-- account.
CREATE TABLE oidc_logins (
    -- SHA-256 of the state parameter handed to the provider.
    state_hash BYTEA PRIMARY KEY,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    -- The PKCE verifier: it never left the server, and the row goes at
    -- FinishOidcLogin or expiry.
    pkce_verifier TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX oidc_logins_expiry ON oidc_logins (expires_at);

CREATE TABLE user_identities (
    provider TEXT NOT NULL,
    -- The provider's `sub`: stable, unlike the email.
    subject TEXT NOT NULL,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

//! `login`, `logout` and `whoami`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use folio_proto::v1::{LoginRequest, LogoutRequest, Role, VerifyMfaRequest, WhoAmIRequest, auth_service_client::AuthServiceClient};

use crate::{cli::Login, client::saved_from, context::Context, exit::Error, records};

pub async fn login(ctx: &Context, args: Login) -> Result<(), Error> {
    let email = match args.email {
        Some(email) => email,
        None => ask("Email: ", "no email given (--email or FOLIO_EMAIL)")?,
    };
    let password = match args.password {
        Some(password) => password,
        None => rpassword::prompt_password("Password: ").map_err(|e| Error::local(format!("cannot read the password: {e}")))?,
    };
    let mut auth = AuthServiceClient::new(ctx.channel().await?);
    let mut session = auth
        .login(LoginRequest {
            email: email.clone(),
            password,
        })
        .await?
        .into_inner();
    if let Some(challenge) = session.mfa_required.take() {
        let code = match args.code {
            Some(code) => code,
            None => ask(
                "Code from your authenticator app (or a backup code): ",
                "the account has a second factor on: give its code (--code or FOLIO_MFA_CODE)",
            )?,
        };
        session = auth
            .verify_mfa(VerifyMfaRequest {
                challenge: challenge.challenge,
                code,
            })
            .await?
            .into_inner();
    }
    ctx.store.save(&ctx.server, Some(saved_from(&session, &email)))?;
    match &session.user {
        Some(user) if ctx.out.json => ctx.out.one(records::user(user)),
        Some(user) => {
            let role = Role::try_from(user.role).map_or("an unknown role", |role| role.as_str_name());
            println!("logged in to {} as {} ({role})", ctx.server, user.email);
        }
        None => ctx.out.note(&format!("logged in to {}", ctx.server)),
    }
    Ok(())
}

pub async fn logout(ctx: &Context) -> Result<(), Error> {
    let client = ctx.client().await?;
    // A session the server already ended is as good as revoked: forget it.
    let revoked = client
        .call(async |channel| AuthServiceClient::new(channel).logout(LogoutRequest {}).await)
        .await;
    match revoked {
        Ok(_) => {}
        Err(Error::Status(status)) if status.code() == tonic::Code::Unauthenticated => {}
        Err(other) => return Err(other),
    }
    client.forget()?;
    ctx.out.note(&format!("logged out of {}", ctx.server));
    if ctx.out.json {
        ctx.out.json(&serde_json::json!({ "logged_out": ctx.server }));
    }
    Ok(())
}

pub async fn whoami(ctx: &Context) -> Result<(), Error> {
    let client = ctx.client().await?;
    let user = client
        .call(async |channel| AuthServiceClient::new(channel).who_am_i(WhoAmIRequest {}).await)
        .await?;
    ctx.out.one(records::user(&user));
    Ok(())
}

/// Reads one line from the terminal (or standard input); `missing` when
/// there is none.
fn ask(prompt: &str, missing: &str) -> Result<String, Error> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim().to_owned();
    if line.is_empty() {
        return Err(Error::local(missing));
    }
    Ok(line)
}

//! The listeners and the server on them: the HTTPS listener with its certificates (files and
//! ACME), and the actix-web server whose first step is the host router (app hosts go to the
//! proxy and never reach the dashboard's routes).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpServer, web};
use anyhow::Context;

use crate::config::Config;
use crate::db::Db;
use crate::http;
use crate::notifications::Notifier;
use crate::proxy::acme::Acme;
use crate::proxy::tls::Certificates;
use crate::proxy::{Destination, Https, Proxy};
use crate::secrets::Sealer;
use crate::state::AppState;

/// Binds `addr`, saying which setting names it when it is taken.
pub(super) fn bind(addr: std::net::SocketAddr, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} (is it in use? set {setting})"))
}

/// With `proxy.https_listen`: its listener (`inherited` from an upgrading process, or bound
/// now) and the proxy's HTTPS part (certificates by SNI, and ACME when a directory is set).
pub(super) fn https(
    config: &Arc<Config>,
    db: &Db,
    sealer: &Arc<Sealer>,
    notifier: &Arc<Notifier>,
    inherited: Option<TcpListener>,
) -> anyhow::Result<Option<(TcpListener, Https)>> {
    let Some(addr) = config.proxy.https_listen else {
        return Ok(None);
    };
    let listener = match inherited {
        Some(listener) => listener,
        None => bind(addr, "proxy.https_listen")?,
    };
    let certs = Arc::new(Certificates::load(
        &config.data_dir,
        &config.proxy.certificates,
    ));
    let acme = config.acme.directory_url.as_ref().map(|_| {
        Arc::new(Acme::new(
            db.clone(),
            sealer.clone(),
            config.clone(),
            certs.clone(),
            notifier.clone(),
        ))
    });
    let port = listener.local_addr()?.port();
    Ok(Some((listener, Https { certs, acme, port })))
}

/// The server on `listener` (and the HTTPS listener with `tls`), not yet running.
pub(super) fn http(
    state: &web::Data<AppState>,
    listener: TcpListener,
    https: Option<(TcpListener, rustls::ServerConfig)>,
) -> anyhow::Result<actix_web::dev::Server> {
    let server_state = state.clone();
    let mut server = HttpServer::new(move || {
        // The host decides first: app hosts go to the proxy (with this worker's upstream
        // pool) and never reach the dashboard's routes or middleware.
        let proxy = server_state.proxy.clone();
        let client = std::rc::Rc::new(Proxy::client(&server_state.config));
        let draining = server_state.draining.clone();
        actix_web::App::new()
            .wrap_fn(move |req, srv| {
                use actix_web::dev::Service;
                use futures_util::future::{Either, FutureExt};
                if let Some((acme, token)) = proxy.acme_challenge(&req) {
                    return Either::Right(
                        async move {
                            let answer = Proxy::answer_challenge(&acme, &token).await;
                            Ok(req.into_response(answer))
                        }
                        .boxed_local(),
                    );
                }
                if let Some(answer) = proxy.early_answer(&req) {
                    let response = req.into_response(answer);
                    return Either::Right(async move { Ok(response) }.boxed_local());
                }
                match proxy.destination_of(&req) {
                    Destination::Dashboard => Either::Left(srv.call(req)),
                    destination => {
                        let (proxy, client) = (proxy.clone(), client.clone());
                        Either::Right(
                            async move {
                                Ok(proxy
                                    .serve(req, destination, &client)
                                    .await
                                    .map_into_boxed_body())
                            }
                            .boxed_local(),
                        )
                    }
                }
            })
            // Outermost, so proxied answers too: while this process drains (an upgrade handed
            // its sockets on), every response closes its connection, so keep-alive clients
            // reconnect to the new process.
            .wrap_fn(move |req, srv| {
                use actix_web::dev::Service;
                use futures_util::future::FutureExt;
                let draining = draining.clone();
                srv.call(req).map(move |res| {
                    res.map(|mut res| {
                        // (A WebSocket's 101 stays as it is: its tunnel drains on its own.)
                        if draining.is_cancelled()
                            && res.status() != actix_web::http::StatusCode::SWITCHING_PROTOCOLS
                        {
                            res.response_mut()
                                .head_mut()
                                .set_connection_type(actix_web::http::ConnectionType::Close);
                        }
                        res
                    })
                })
            })
            .configure(|cfg| http::configure(cfg, server_state.clone()))
    })
    .disable_signals()
    // Idle keep-alive connections stay open longer than clients keep them pooled, so a
    // client never sends on a connection the server is closing at that very moment.
    .keep_alive(Duration::from_secs(75))
    .shutdown_timeout(state.config.http.shutdown_timeout_secs);
    if state.config.http.workers > 0 {
        server = server.workers(state.config.http.workers);
    }
    server = server.listen(listener)?;
    if let Some((listener, tls)) = https {
        tracing::info!("listening on https://{}", listener.local_addr()?);
        server = server.listen_rustls_0_23(listener, tls)?;
    }
    Ok(server.run())
}

//! The template's HTTP API on a real port, served by the handlers in-process: what tools that
//! speak HTTP (schemathesis) test against. The router is the local stack's API Gateway, the
//! same one `make dev` runs; only the invocation differs: the event is turned into a request
//! by lambda_http, as the function's runtime does, and handed to the handler here.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use futures::future::BoxFuture;
use hookrelay_local::gateway::{Invoke, InvokeError, router};
use hookrelay_local::template::Template;

use crate::Stack;

struct Functions {
    ingest: hookrelay_ingest::Context,
    admin: hookrelay_admin::Context,
}

impl Invoke for Functions {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        event: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, InvokeError>> {
        Box::pin(async move {
            let text =
                std::str::from_utf8(&event).map_err(|e| InvokeError::Failed(e.to_string()))?;
            let req = lambda_http::request::from_str(text)
                .map_err(|e| InvokeError::Failed(e.to_string()))?;
            let resp = match function {
                "ingest" => hookrelay_ingest::handle(&self.ingest, req).await,
                "admin" => hookrelay_admin::handle(&self.admin, req).await,
                other => return Err(InvokeError::Unreachable(format!("no function {other}"))),
            };
            let (parts, body) = resp.into_parts();
            let mut answer = ApiGatewayV2httpResponse::default();
            answer.status_code = i64::from(parts.status.as_u16());
            answer.headers = parts.headers;
            answer.body = Some(lambda_http::Body::Text(body));
            serde_json::to_vec(&answer).map_err(|e| InvokeError::Failed(e.to_string()))
        })
    }
}

/// Serves the stack's API on 127.0.0.1; answers its base URL. The server lives as long as
/// the test's runtime.
pub async fn serve(stack: &Stack) -> String {
    let routes = Template::workspace_default()
        .and_then(|t| t.http_routes())
        .expect("template routes");
    let functions = Arc::new(Functions {
        ingest: stack.ingest(),
        admin: stack.admin(),
    });
    let app = router(routes, functions);
    let addr = crate::serve_on_loopback(app).await;
    format!("http://{addr}")
}

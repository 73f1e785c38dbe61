"""FGA: relationship-based authorization (an OpenFGA model) around tools and retrieval.

1. An authorization model (OpenFGA's DSL) and a few relationship tuples: alice is in
   engineering, bob in HR, alice owns the roadmap;
2. ``FGARetriever`` keeps only the documents the signed-in user may view: alice and bob
   search for the same words and see different documents;
3. ``FGAMiddleware`` checks each tool call first: bob cannot read the roadmap until alice,
   its owner, shares it with him; bob cannot share what he does not own.

Users sign in at the local OpenID provider; the user the checks use comes from the verified
token (identity pillar), never from the model.

    python examples/fga_example.py                  # provider in-process
    agent-auth dev &  python examples/fga_example.py --dev-dir .agent-auth/dev
"""

from __future__ import annotations

from _common import Transcript, calls, chat_model, parse_args, provider, say
from langchain.agents import create_agent
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from langchain_agent_auth import (
    AuthContext,
    EmbeddedAuthorizer,
    FGAMiddleware,
    FGARetriever,
    IdentityMiddleware,
    JWTVerifier,
    TokenResolver,
)

API = "urn:example:api"
MODEL = """
model
  schema 1.1
type user
type team
  relations
    define member: [user]
type document
  relations
    define owner: [user]
    define viewer: [user, user:*, team#member] or owner
"""
DOCS = {
    "handbook": "Employee handbook: holidays, expenses and plans for the office move.",
    "roadmap": "2030 roadmap: plans for the agent platform launch.",
    "salaries": "Salary bands and plans for the 2030 review.",
}


class KeywordRetriever(BaseRetriever):
    """Stands in for a vector store: documents containing every word of the query."""

    docs: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: object) -> list[Document]:
        words = query.lower().split()
        return [d for d in self.docs if all(w in d.page_content.lower() for w in words)]


def main() -> None:
    args = parse_args(__doc__)

    def audit(decision) -> None:  # every check, allowed or not, for the audit log
        say("fga", f"{decision.user} {decision.relation} {decision.object}: "
                   f"{'allowed' if decision.allowed else 'denied'}")

    fga = EmbeddedAuthorizer(MODEL, on_decision=audit)  # in-process engine; OpenFGAAuthorizer for a server
    fga.write([
        ("user:alice", "member", "team:engineering"),
        ("user:bob", "member", "team:hr"),
        ("user:*", "viewer", "document:handbook"),
        ("team:engineering#member", "viewer", "document:roadmap"),
        ("user:alice", "owner", "document:roadmap"),
        ("team:hr#member", "viewer", "document:salaries"),
    ])
    retriever = FGARetriever(  # the user is the current one (from the identity pillar)
        retriever=KeywordRetriever(docs=[Document(text, metadata={"id": key}) for key, text in DOCS.items()]),
        authorizer=fga, relation="viewer", object_type="document",
    )

    @tool
    def search_docs(query: str) -> str:
        """Search the company documents."""
        return "found " + ", ".join(d.metadata["id"] for d in retriever.invoke(query))

    @tool
    def read_doc(doc_id: str) -> str:
        """Read a document."""
        return DOCS[doc_id]

    @tool
    def share_doc(doc_id: str, person: str) -> str:
        """Let another person view a document."""
        fga.write([(f"user:{person}", "viewer", f"document:{doc_id}")], on_duplicate="ignore")
        return f"{person} can now view {doc_id}"

    with provider(args) as idp:
        verifier = JWTVerifier(idp.issuer, audience=API)
        tokens = {name: idp.login(name, scope="openid", resource=API)["access_token"] for name in ("alice", "bob")}
        say("provider", "alice and bob signed in; their access tokens name them (verified on every run)")

        agent = create_agent(
            chat_model(args, [
                calls(("search_docs", {"query": "plans"})),  # alice
                calls(("search_docs", {"query": "plans"})),  # bob
                calls(("read_doc", {"doc_id": "roadmap"})),  # bob
                calls(("share_doc", {"doc_id": "roadmap", "person": "bob"})),  # alice
                calls(("read_doc", {"doc_id": "roadmap"})),  # bob
                calls(("share_doc", {"doc_id": "salaries", "person": "alice"})),  # bob
            ]),
            [search_docs, read_doc, share_doc],
            middleware=[
                IdentityMiddleware([TokenResolver(verifier)]),
                FGAMiddleware(fga, {
                    "read_doc": {"relation": "viewer", "object": "document:{doc_id}"},
                    "share_doc": {"relation": "owner", "object": "document:{doc_id}"},
                }),
            ],
            context_schema=AuthContext,
            checkpointer=InMemorySaver(),
        )
        transcripts = {name: Transcript(name) for name in tokens}

        def ask(name: str, question: str) -> None:
            transcripts[name].run(agent, {"messages": [("user", question)]}, {"configurable": {"thread_id": name}},
                                  context={"access_token": tokens[name]})

        ask("alice", "Find documents about plans.")
        ask("bob", "Find documents about plans.")
        ask("bob", "Read the roadmap.")
        ask("alice", "Share the roadmap with bob.")
        ask("bob", "Read the roadmap.")
        ask("bob", "Share the salaries document with alice.")


if __name__ == "__main__":
    main()

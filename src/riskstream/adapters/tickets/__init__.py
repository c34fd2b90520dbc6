"""Ticket systems behind :class:`riskstream.ports.TicketSystem`: Jira Cloud, GitHub
Issues and ServiceNow, over the standard library's HTTP client."""

from riskstream.adapters.tickets.github import GitHubTickets
from riskstream.adapters.tickets.jira import JiraTickets
from riskstream.adapters.tickets.servicenow import ServiceNowTickets

__all__ = ["GitHubTickets", "JiraTickets", "ServiceNowTickets"]

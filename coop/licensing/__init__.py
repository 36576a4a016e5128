"""Licence requests, board votes with quorum, signed licences, revocation and payments."""
